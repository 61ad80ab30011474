// Without WebGPU (Chromium launched without --enable-unsafe-webgpu: on Linux it then exposes
// navigator.gpu but gives no adapter) the demo says what to do, and nothing throws uncaught.

import test from 'node:test';
import assert from 'node:assert/strict';
import { serve, withBrowser, waitForState, errorText } from './lib.mjs';

test('demo without WebGPU: a clear error naming the browser/flag, no uncaught exception', { timeout: 120_000 }, async () => {
  const server = await serve();
  try {
    await withBrowser({ webgpu: false }, async (b) => {
      const { page } = b;
      await page.goto(server.url);
      await waitForState(page, ['error'], 60_000);
      const code = await page.getAttribute('#error', 'data-code');
      assert.equal(code, 'no-webgpu');
      const text = await errorText(page);
      assert.match(text, /WebGPU is not available/);
      assert.match(text, /enable-unsafe-webgpu/);
      assert.match(text, /Chrome/);
      assert.equal(await page.isDisabled('#run'), true, 'Run must stay disabled without a model');
      // The package itself must reject with the typed error too (not hang, not throw uncaught).
      const err = await page.evaluate(async () => {
        const { Pinhole } = await import('/js/index.js');
        try {
          await Pinhole.load(new URL('model/', location.href).href);
          return { code: 'resolved' };
        } catch (e) {
          return { code: e.code, message: e.message, name: e.name };
        }
      });
      assert.equal(err.code, 'no-webgpu', JSON.stringify(err));
      assert.ok(err.message.length > 20, 'the message should tell the user what to do');
      // Give stray promise rejections a moment to surface.
      await page.waitForTimeout(500);
      assert.deepEqual(b.errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
