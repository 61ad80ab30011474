// The loader's wasm memory bound in the browser (issue #14 item 6), in CI size: with
// `maxHostBytes` far below the model's largest tensor (the 200 KB f32 embedding of the test
// model), the load keeps under it — the tensor goes to the GPU in pieces as its bytes arrive —
// and the model still generates the native CLI's ids; `Pinhole.memory` reports it, in the
// worker and on the page. The same at real size (a 1 GB bf16 embedding) is measured by
// `node tools/bench-web.mjs --model DIR --memory` (BENCHMARKS.md), outside CI.

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, withBrowser, nativeGenerate, FIXTURES, TEST_MODEL } from './lib.mjs';

const IMAGE = path.join(FIXTURES, 'images/shapes_64.png');
const MAX_NEW = 6;
const BOUND = 32 * 1024;

test('a lowered host bound: the loader stays under it, the model is the same (worker and page)', { timeout: 300_000 }, async () => {
  const native = nativeGenerate({ model: TEST_MODEL, image: IMAGE, prompt: 'caption en', maxNewTokens: MAX_NEW });
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      for (const worker of [true, false]) {
        const r = await page.evaluate(
          async ({ worker, bound, maxNewTokens }) => {
            const blob = await (await fetch('/fixtures/images/shapes_64.png')).blob();
            const low = await Pinhole.load('/model/', { worker, maxHostBytes: bound });
            const lowOut = await low.generate(blob, { prompt: 'caption en', maxNewTokens });
            const lowMemory = low.memory;
            low.dispose();
            const dflt = await Pinhole.load('/model/', { worker });
            const dfltMemory = dflt.memory;
            dflt.dispose();
            const bad = [];
            for (const v of [-1, 0, 100, Number.NaN, '1e6', Infinity]) {
              try {
                await Pinhole.load('/model/', { worker, maxHostBytes: v });
                bad.push('resolved');
              } catch (e) {
                bad.push(e.code);
              }
            }
            return { ids: lowOut.tokenIds, lowMemory, dfltMemory, bad };
          },
          { worker, bound: BOUND, maxNewTokens: MAX_NEW },
        );
        const mode = worker ? 'worker' : 'page';
        assert.deepEqual(r.ids, native.token_ids, `${mode}: ids with a ${BOUND}-byte bound differ from the native CLI`);
        const m = r.lowMemory;
        assert.equal(m.hostBoundBytes, BOUND, `${mode}: ${JSON.stringify(m)}`);
        assert.ok(m.loaderPeakBytes > 0 && m.loaderPeakBytes <= BOUND, `${mode}: loader peak ${m.loaderPeakBytes} not in (0, ${BOUND}]`);
        assert.ok(Number.isInteger(m.wasmBytes) && m.wasmBytes > 0 && m.wasmBytes % 65536 === 0, `${mode}: wasm memory ${m.wasmBytes} is not a whole number of wasm pages`);
        assert.equal(r.dfltMemory.hostBoundBytes, 256 * 1024 * 1024, `${mode}: default bound`);
        assert.ok(r.dfltMemory.loaderPeakBytes > 0, `${mode}: ${JSON.stringify(r.dfltMemory)}`);
        assert.deepEqual(r.bad, Array(6).fill('bad-request'), `${mode}: invalid maxHostBytes must be bad-request`);
      }
    });
  } finally {
    await server.close();
  }
});
