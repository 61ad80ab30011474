// The native kernel test cases (crates/pinhole-gpu's shared case list: seeded random inputs vs
// the CPU reference, NaN-poisoned outputs, odd sizes, a lowered per-binding limit) run under
// WebGPU in headless Chromium through pinhole-web's `runKernelTests()`.

import test from 'node:test';
import assert from 'node:assert/strict';
import { serve, withBrowser } from './lib.mjs';

test('kernel test cases pass under WebGPU in Chromium', { timeout: 400_000 }, async () => {
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      const report = await page.evaluate(async () => {
        const wasm = await import('/pkg/pinhole_web.js');
        await wasm.default();
        const engine = await wasm.Engine.open();
        return JSON.parse(await engine.runKernelTests());
      });
      const cases = report.cases || [];
      const failed = cases.filter((c) => !c.passed);
      console.log(`kernel cases in the browser: ${cases.length} run, ${failed.length} failed (adapter: ${report.adapter ? JSON.stringify(report.adapter) : '?'})`);
      for (const c of failed) console.log(`  FAILED ${c.name}: ${c.error || ''} ${c.relError ?? ''}`);
      assert.ok(cases.length >= 10, `too few kernel cases ran: ${JSON.stringify(report).slice(0, 500)}`);
      assert.deepEqual(failed.map((c) => c.name), []);
      assert.deepEqual(b.errors.map(String), []);
    });
  } finally {
    await server.close();
  }
});
