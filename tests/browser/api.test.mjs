// The package API from a plain page (tests/browser/pages/api.html imports only js/index.js):
// load with progress, generate (equal to the native CLI), stream (pieces add up to the same
// text), abort, typed error codes, and the worker surviving bad input.

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, withBrowser, nativeGenerate, FIXTURES, TEST_MODEL } from './lib.mjs';

const IMAGE = path.join(FIXTURES, 'images/shapes_64.png');
const MAX_NEW = 8;

test('package API: load, generate, stream, abort, errors, worker survives bad input', { timeout: 400_000 }, async () => {
  const native = nativeGenerate({ model: TEST_MODEL, image: IMAGE, prompt: 'caption en', maxNewTokens: MAX_NEW });
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });

      // support(): SwiftShader is a fallback adapter and must be reported as one.
      const support = await page.evaluate(() => Pinhole.support());
      assert.equal(support.webgpu, true);
      assert.equal(support.fallbackAdapter, true, `SwiftShader must be reported as a fallback: ${JSON.stringify(support)}`);
      assert.equal(typeof support.f16, 'boolean');
      assert.ok(support.limits && support.limits.maxStorageBufferBindingSize > 0, JSON.stringify(support.limits));

      // load with progress events, then generate on the encoded PNG (decoded in Rust as natively).
      const r = await page.evaluate(async (maxNewTokens) => {
        const events = [];
        const vlm = await Pinhole.load('/model/', { onProgress: (p) => events.push({ ...p }) });
        window.vlm = vlm;
        const blob = await (await fetch('/fixtures/images/shapes_64.png')).blob();
        window.blob = blob;
        const out = await vlm.generate(blob, { prompt: 'caption en', maxNewTokens });
        return { events, out: JSON.parse(JSON.stringify(out)) };
      }, MAX_NEW);
      assert.ok(r.events.length > 0, 'no progress events');
      const weights = r.events.filter((e) => /safetensors$/.test(e.file || ''));
      assert.ok(weights.length > 0, `no progress for the weights: ${JSON.stringify(r.events.slice(0, 5))}`);
      const last = weights[weights.length - 1];
      assert.equal(last.loaded, last.total, 'the weights file did not finish');
      assert.equal(r.out.text, native.text, 'generate() text differs from the native CLI');
      assert.deepEqual(r.out.tokenIds, native.token_ids, 'generate() token ids differ from the native CLI');
      for (const k of ['imageEncodeMs', 'prefillMs', 'decodeMs', 'tokensPerSecond']) {
        assert.equal(typeof r.out.timings[k], 'number', `timings.${k}`);
      }
      assert.ok(Array.isArray(r.out.boxes));

      // stream(): the pieces add up to the same text.
      const pieces = await page.evaluate(async (maxNewTokens) => {
        const got = [];
        for await (const p of vlm.stream(blob, { prompt: 'caption en', maxNewTokens })) got.push({ text: p.text, tokenId: p.tokenId });
        return got;
      }, MAX_NEW);
      assert.ok(pieces.length > 1, 'stream gave fewer than two pieces');
      assert.equal(pieces.map((p) => p.text).join(''), native.text);
      for (const p of pieces) assert.equal(typeof p.tokenId, 'number');

      // A canvas (pixels, not bytes) goes through the RGBA path; a PNG's pixels are exact, so the
      // caption is the same.
      const fromCanvas = await page.evaluate(async (maxNewTokens) => {
        const bmp = await createImageBitmap(blob);
        const c = document.createElement('canvas');
        c.width = bmp.width;
        c.height = bmp.height;
        c.getContext('2d').drawImage(bmp, 0, 0);
        return (await vlm.generate(c, { prompt: 'caption en', maxNewTokens })).text;
      }, MAX_NEW);
      assert.equal(fromCanvas, native.text, 'canvas input gives a different caption than the PNG bytes');

      // Typed errors; after each one the same model (and its worker) still works.
      const codes = await page.evaluate(async () => {
        const code = async (f) => {
          try {
            await f();
            return 'resolved';
          } catch (e) {
            return e instanceof PinholeError ? e.code : `not a PinholeError: ${e}`;
          }
        };
        const out = {};
        out.badImage = await code(() => vlm.generate(new Blob(['definitely not a PNG'], { type: 'image/png' }), { prompt: 'caption en', maxNewTokens: 2 }));
        out.afterBadImage = (await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 2 })).tokenIds.length;
        // A Rust panic: the call rejects with 'internal', the worker re-creates its wasm instance
        // and the next call works with the same model.
        out.panic = await code(() => vlm._debugPanic());
        out.afterPanic = (await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 2 })).tokenIds.length;
        out.tooLong = await code(() => vlm.generate(blob, { prompt: 'caption en ' + 'x '.repeat(20000), maxNewTokens: 2 }));
        const pre = new AbortController();
        pre.abort();
        out.preAborted = await code(() => vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 4, signal: pre.signal }));
        // Abort in the middle of a stream, after the first piece.
        const mid = new AbortController();
        out.midStream = await code(async () => {
          for await (const _ of vlm.stream(blob, { prompt: 'caption en', maxNewTokens: 32, signal: mid.signal })) mid.abort();
        });
        out.afterAbort = (await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 2 })).tokenIds.length;
        out.missing = await code(() => Pinhole.load('/no-such-model/'));
        out.badConfig = await code(() =>
          Pinhole.load([new File(['{ not json'], 'config.json'), new File(['{}'], 'tokenizer.json'), new File(['x'], 'model.safetensors')]),
        );
        const loadAbort = new AbortController();
        loadAbort.abort();
        out.loadAborted = await code(() => Pinhole.load('/model/', { signal: loadAbort.signal }));
        // f16 math needs shader-f16 (SwiftShader has none): a clear bad-request before any
        // download, or, where the adapter has it, a model that generates.
        out.f16 = (await Pinhole.support()).f16;
        try {
          const m = await Pinhole.load('/model/', { f16Math: true });
          out.f16Math = (await m.generate(blob, { prompt: 'caption en', maxNewTokens: 2 })).tokenIds.length;
          m.dispose();
        } catch (e) {
          out.f16Math = `${e.code}: ${e.message}`;
        }
        out.f16MathNotBool = await code(() => Pinhole.load('/model/', { f16Math: 'yes' }));
        vlm.dispose();
        out.afterDispose = await code(() => vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 2 }));
        return out;
      });
      assert.equal(codes.badImage, 'bad-image');
      assert.equal(codes.afterBadImage, 2, 'the model did not work after a bad image');
      assert.equal(codes.panic, 'internal');
      assert.equal(codes.afterPanic, 2, 'the model did not work after a panic');
      assert.equal(codes.tooLong, 'prompt-too-long');
      assert.equal(codes.preAborted, 'aborted');
      assert.equal(codes.midStream, 'aborted');
      assert.equal(codes.afterAbort, 2, 'the model did not work after an abort');
      assert.ok(['network', 'bad-model'].includes(codes.missing), `missing model: ${codes.missing}`);
      assert.equal(codes.badConfig, 'bad-model');
      assert.equal(codes.loadAborted, 'aborted');
      if (codes.f16) assert.equal(codes.f16Math, 2, 'f16Math on an adapter with shader-f16');
      else assert.match(String(codes.f16Math), /^bad-request: .*shader-f16/, 'f16Math without shader-f16');
      assert.equal(codes.f16MathNotBool, 'bad-request');
      assert.equal(codes.afterDispose, 'disposed', 'generate after dispose must reject');

      // The main-thread path (worker: false) gives the same result.
      const mainThread = await page.evaluate(async (maxNewTokens) => {
        const m = await Pinhole.load('/model/', { worker: false });
        try {
          return (await m.generate(blob, { prompt: 'caption en', maxNewTokens })).text;
        } finally {
          m.dispose();
        }
      }, MAX_NEW);
      assert.equal(mainThread, native.text, 'worker: false gives a different caption');

      // The model cache lists what was downloaded.
      const cached = await page.evaluate(() => Pinhole.cache.list());
      assert.ok(JSON.stringify(cached).includes('model.safetensors'), `cache.list(): ${JSON.stringify(cached)}`);
      assert.deepEqual(b.errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
