// A full model cache (issue 13): with the origin's storage quota below the model's size
// (Chromium's DevTools `Storage.overrideQuotaForOrigin`), every Cache Storage write of the
// weights fails with a quota error. As README.md documents, that only means the load is not
// cached: three loads in a row each download the files and caption as before, and nothing
// half-written is left (no complete folder in `Pinhole.cache.list()`). With the quota
// restored, a load is cached and the next one reads from the cache (so the test would see a
// load that silently cached nothing, or one that failed on the quota).

import test from 'node:test';
import assert from 'node:assert/strict';
import { serve, withBrowser } from './lib.mjs';

test('a full cache: loads still work uncached; with room again they are cached', { timeout: 300_000 }, async () => {
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page, context } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const origin = new URL(server.url).origin;
      const cdp = await context.newCDPSession(page);
      // Far below the test model's 380 KB of weights.
      await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 64 * 1024 });

      const loads = (n) =>
        page.evaluate(async (n) => {
          const blob = await (await fetch('/fixtures/images/shapes_64.png')).blob();
          const out = [];
          for (let i = 0; i < n; i++) {
            const phases = new Set();
            try {
              const vlm = await Pinhole.load('/model/', { onProgress: (e) => /safetensors$/.test(e.file ?? '') && phases.add(e.phase) });
              const ids = (await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 4 })).tokenIds;
              vlm.dispose();
              out.push({ ids, phases: [...phases] });
            } catch (e) {
              out.push({ error: `${e.code}: ${e.message}` });
            }
          }
          const cached = await Pinhole.cache.list();
          return { out, complete: cached.filter((c) => c.complete).map((c) => c.url) };
        }, n);

      const full = await loads(3);
      for (const [i, r] of full.out.entries()) {
        assert.ok(!r.error, `load ${i + 1} with a full cache failed: ${r.error}`);
        assert.deepEqual(r.phases, ['download'], `load ${i + 1} with a full cache: weights must be downloaded`);
        assert.deepEqual(r.ids, full.out[0].ids, `load ${i + 1}: a different caption`);
      }
      assert.deepEqual(full.complete, [], 'nothing may be cached as complete when the writes failed');

      // Room again (no override): the first load is cached, the second reads the cache.
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
      const roomy = await loads(2);
      assert.ok(!roomy.out[0].error && !roomy.out[1].error, JSON.stringify(roomy.out));
      assert.deepEqual(roomy.out[0].phases, ['download']);
      assert.deepEqual(roomy.out[1].phases, ['cache'], 'the load after a cached one must come from the cache');
      assert.deepEqual(roomy.out[1].ids, full.out[0].ids);
      assert.equal(roomy.complete.length, 1, `one complete cached folder: ${JSON.stringify(roomy.complete)}`);
      assert.deepEqual(b.errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
