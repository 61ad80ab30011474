// The native kernel test cases (pinhole-gpu's shared case list, the same as
// crates/pinhole-gpu/tests: seeded random inputs vs the CPU reference, NaN-poisoned outputs, odd
// sizes; on the adapter's limit and on a second device with a lowered per-binding limit) run
// under WebGPU in headless Chromium through the package's Pinhole.runKernelTests(), from the
// test build of the wasm (`bash tools/build-web.sh --kernel-tests`: the published one has no
// test cases).

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, withBrowser, ROOT } from './lib.mjs';

test('kernel test cases pass under WebGPU in Chromium', { timeout: 500_000 }, async () => {
  const server = await serve({ pkg: path.join(ROOT, 'pkg-kernel-tests') });
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const report = await page.evaluate(() => Pinhole.runKernelTests());
      const cases = report.cases || [];
      const failed = cases.filter((c) => !c.passed);
      console.log(
        `kernel cases in the browser: ${report.ran} of ${report.totalCases} run on ${report.devices} devices, ` +
          `${report.failed} failed, ${Math.round(report.ms)} ms (adapter: ${report.adapter}, software: ${report.isSoftware})`,
      );
      for (const c of failed) console.log(`  FAILED ${c.name} (binding limit ${c.bindingLimit}): ${c.message} rel ${c.maxRelError} tol ${c.tol}`);
      for (const n of report.notes || []) console.log(`  note: ${n}`);
      assert.ok(report.totalCases >= 10, `too few kernel cases: ${JSON.stringify(report).slice(0, 400)}`);
      assert.equal(report.ran, cases.length);
      // Every case on both devices (the second has the lowered per-binding limit).
      assert.equal(report.devices, 2, 'the second device with a lowered binding limit did not open');
      assert.equal(report.ran, report.totalCases * 2, 'not every case ran on both devices');
      assert.deepEqual(failed.map((c) => `${c.name}@${c.bindingLimit}`), []);
      assert.equal(report.ok, true);
      assert.equal(report.isSoftware, true, 'SwiftShader should be reported as software');
      assert.deepEqual(b.errors.map(String), []);
    });
  } finally {
    await server.close();
  }
});
