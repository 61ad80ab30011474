// GPU device loss in the browser (issue 17): GPUDevice.destroy() in the middle of a caption
// rejects that call with a PinholeError of code 'device-lost'; the next call opens a new device,
// reloads the model (from the cache) and gives the same answer; a loss while idle is recovered
// before the next call, which just works. Once in the worker (the device destroyed through the
// package's test hook, which calls GPUDevice.destroy()), once on the page (`worker: false`),
// where the test itself captures the GPUDevice the engine requested and destroys it from the
// token callback, as a GPU reset would, with no help from pinhole.

import test from 'node:test';
import assert from 'node:assert/strict';
import { serve, withBrowser } from './lib.mjs';

const MAX_NEW = 8;

test('device loss: the call rejects with device-lost, the next call works (worker and page)', { timeout: 600_000 }, async () => {
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      // Record every GPUDevice the page's engine requests (worker: false runs it here).
      await page.evaluate(() => {
        window.devices = [];
        const request = GPUAdapter.prototype.requestDevice;
        GPUAdapter.prototype.requestDevice = async function (...args) {
          const d = await request.apply(this, args);
          window.devices.push(d);
          return d;
        };
      });

      const outcome = (label) =>
        page.evaluate(
          async ({ label, maxNewTokens }) => {
            const blob = await (await fetch('/fixtures/images/shapes_64.png')).blob();
            const opts = { prompt: 'caption en', maxNewTokens };
            const worker = label === 'worker';
            const vlm = await Pinhole.load('/model/', { worker });
            const before = await vlm.generate(blob, opts);
            const out = { before: before.tokenIds, devicesBefore: window.devices.length };

            // Lost during the caption, after its first token.
            let tokens = 0;
            try {
              for await (const _ of vlm.stream(blob, opts)) {
                tokens += 1;
                if (tokens !== 1) continue;
                if (worker) await vlm._debugLoseDevice();
                else window.devices[window.devices.length - 1].destroy();
              }
              out.midCall = 'resolved';
            } catch (e) {
              out.midCall = e instanceof PinholeError ? e.code : `not a PinholeError: ${e}`;
              out.midMessage = e.message;
            }
            out.tokensBeforeLoss = tokens;
            // The next call: a new device, the model reloaded, the same ids.
            out.after = (await vlm.generate(blob, opts)).tokenIds;
            // Lost while idle: the next call recovers first and does not fail.
            if (worker) await vlm._debugLoseDevice();
            else window.devices[window.devices.length - 1].destroy();
            await new Promise((r) => setTimeout(r, 50));
            out.afterIdleLoss = (await vlm.generate(blob, opts)).tokenIds;
            vlm.dispose();
            // A fresh load works too.
            const again = await Pinhole.load('/model/', { worker });
            out.fresh = (await again.generate(blob, opts)).tokenIds;
            again.dispose();
            out.devicesAfter = window.devices.length;
            return out;
          },
          { label, maxNewTokens: MAX_NEW },
        );

      for (const label of ['worker', 'page']) {
        const r = await outcome(label);
        assert.ok(r.before.length >= 3, `${label}: the caption must be long enough to be interrupted: ${r.before}`);
        assert.equal(r.midCall, 'device-lost', `${label}: a caption interrupted by the loss: ${r.midCall} ${r.midMessage ?? ''}`);
        assert.match(r.midMessage, /device was lost/, label);
        assert.match(r.midMessage, /next call opens a new device/, label);
        assert.ok(r.tokensBeforeLoss >= 1 && r.tokensBeforeLoss < r.before.length, `${label}: lost after ${r.tokensBeforeLoss} tokens`);
        assert.deepEqual(r.after, r.before, `${label}: the call after the loss`);
        assert.deepEqual(r.afterIdleLoss, r.before, `${label}: the call after a loss while idle`);
        assert.deepEqual(r.fresh, r.before, `${label}: a fresh load after the loss`);
        if (label === 'page') {
          // On the page each recovery requested a new device: load, mid-call, idle, fresh load.
          assert.equal(r.devicesAfter - r.devicesBefore, 3, `${label}: devices requested ${JSON.stringify(r)}`);
        }
      }
      assert.deepEqual(b.errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
