// End to end through the demo page (www/): give it an image file, the streamed caption equals
// the native CLI's for the same model and image; the stats are shown; then the page is reloaded
// with the server gone and the network off, and it still captions (service worker + model cache).

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, withBrowser, nativeGenerate, waitForState, errorText, FIXTURES, TEST_MODEL, ROOT } from './lib.mjs';

const IMAGE = path.join(FIXTURES, 'images/shapes_64.png');
const PACKAGE_MODEL = path.join(ROOT, 'models/pinhole-shapes-q4');
const MAX_NEW = 12;

async function captionFile(page, file) {
  await page.fill('#max-tokens', String(MAX_NEW));
  await page.fill('#prompt', 'caption en');
  await page.setInputFiles('#file', file);
  const state = await waitForState(page, ['done', 'error'], 120_000);
  assert.equal(state, 'done', `the demo failed: ${await errorText(page)}`);
  return page.textContent('#output');
}

test('demo: file -> caption equals the native CLI, then works offline', { timeout: 400_000 }, async () => {
  const native = nativeGenerate({ model: TEST_MODEL, image: IMAGE, prompt: 'caption en', maxNewTokens: MAX_NEW });
  assert.ok(native.text.length > 0, 'the native caption is empty; the comparison would prove nothing');
  const nativeDetect = nativeGenerate({ model: TEST_MODEL, image: IMAGE, prompt: 'detect circle', maxNewTokens: MAX_NEW });
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(server.url);
      // The page loads the default model by itself.
      const ready = await waitForState(page, ['ready', 'error'], 120_000);
      assert.equal(ready, 'ready', `loading the default model failed: ${await errorText(page)}`);

      const text = await captionFile(page, IMAGE);
      assert.equal(text, native.text, 'browser caption differs from the native CLI');

      // Timings and adapter are shown; SwiftShader must be reported as a software fallback.
      assert.match(await page.textContent('#stat-encode'), /\d.* ms/);
      assert.match(await page.textContent('#stat-prefill'), /\d.* ms/);
      assert.match(await page.textContent('#stat-tps'), /\d.* tokens\/s/);
      assert.match(await page.textContent('#stat-adapter'), /fallback/i);
      assert.match(await page.textContent('#stat-f16'), /no shader-f16; weights f(32|16)/, 'SwiftShader has no shader-f16; the weight dtype is shown');
      assert.deepEqual(b.errors, [], 'uncaught page errors');

      // Detect preset: the same text as the CLI, and its boxes drawn and listed. (The random test
      // model happens to emit <loc> groups, so the count is not trivially zero.)
      await page.click('.preset[data-prompt="detect circle"]');
      assert.equal(await page.inputValue('#prompt'), 'detect circle');
      assert.equal(await waitForState(page, ['done', 'error'], 120_000), 'done', await errorText(page));
      assert.equal(await page.textContent('#output'), nativeDetect.text, 'detect text differs from the native CLI');
      assert.equal(await page.getAttribute('#overlay', 'data-boxes'), String(nativeDetect.boxes.length));
      assert.equal(await page.locator('#boxes li').count(), nativeDetect.boxes.length);
      // The overlay really has pixels where the first box's edge is.
      if (nativeDetect.boxes.length) {
        const bx = nativeDetect.boxes[0];
        const painted = await page.evaluate((bx) => {
          const c = document.getElementById('overlay');
          const x = Math.round(bx.x_min * c.width) + 1;
          const y = Math.round(((bx.y_min + bx.y_max) / 2) * c.height);
          return c.getContext('2d').getImageData(x, y, 1, 1).data[3];
        }, bx);
        assert.ok(painted > 0, 'no box drawn on the overlay at the left edge of the first box');
      }

      // Offline: the service worker must be active (it cached the app while installing) and the
      // model is in the package's cache. Then the server goes away and the network is off.
      await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
      await server.close();
      await b.context.setOffline(true);
      await page.reload();
      const again = await waitForState(page, ['ready', 'error'], 120_000);
      assert.equal(again, 'ready', `offline reload could not load the model: ${await errorText(page)}`);
      const offlineText = await captionFile(page, IMAGE);
      assert.equal(offlineText, native.text, 'offline caption differs');
      assert.deepEqual(b.errors, [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});

test('demo: a bad image and a bad model URL give clear errors, and the page recovers', { timeout: 300_000 }, async () => {
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(server.url);
      assert.equal(await waitForState(page, ['ready', 'error'], 120_000), 'ready', await errorText(page));
      await page.setInputFiles('#file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('this is not a PNG') });
      await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
      assert.match(await errorText(page), /could not be read|cannot decode/i);
      await page.fill('#max-tokens', '4');
      await page.setInputFiles('#file', IMAGE);
      assert.equal(await waitForState(page, ['done', 'error'], 120_000), 'done', await errorText(page));
      assert.ok((await page.textContent('#output')).length > 0);

      // Model picker: a URL with no model gives a clear error; the bundled default loads again.
      await page.check('input[name=model-source][value=url]');
      await page.fill('#model-url', `${server.url}no-such-model/`);
      await page.click('#load');
      assert.equal(await waitForState(page, ['ready', 'error'], 60_000), 'error');
      assert.match(await page.getAttribute('#error', 'data-code'), /^(network|bad-model)$/);
      assert.match(await errorText(page), /no-such-model/);
      assert.equal(await page.isDisabled('#run'), true, 'Run must be disabled without a model');
      await page.check('input[name=model-source][value=default]');
      await page.click('#load');
      // With an image on the page, a freshly loaded model runs on it at once.
      assert.equal(await waitForState(page, ['done', 'error'], 120_000), 'done', await errorText(page));
      assert.equal(await page.getAttribute('#load-status', 'data-loaded'), 'true');
      assert.equal(await errorText(page), '');

      // Model picker, "in the npm package": `Pinhole.load()` with no URL, the 4-bit copy that
      // ships in the package; its caption equals the native CLI's on the same 4-bit folder.
      const nativeQ4 = nativeGenerate({ model: PACKAGE_MODEL, image: IMAGE, prompt: 'caption en', maxNewTokens: 4 });
      assert.ok(nativeQ4.text.length > 0, 'the native 4-bit caption is empty; the comparison would prove nothing');
      await page.fill('#prompt', 'caption en');
      await page.check('input[name=model-source][value=package]');
      await page.click('#load');
      assert.equal(await waitForState(page, ['done', 'error'], 120_000), 'done', await errorText(page));
      assert.match(await page.textContent('#load-status'), /npm package/);
      assert.equal(await page.textContent('#output'), nativeQ4.text, 'the package model captions differently from the native CLI');
      assert.deepEqual(b.errors, []);
    });
  } finally {
    await server.close();
  }
});
