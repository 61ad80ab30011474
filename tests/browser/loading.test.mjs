// Loading from real servers, and the model cache (issue: the npm package in real web apps).
// One headless Chromium; every server is its own origin, so each starts with an empty cache.
//
// * a compressing server with a single-page-app fallback (gzip, no Content-Length, index.html
//   with 200 for unknown paths: `vite preview` / Vite's default dev server) and a plain one:
//   three loads each, in worker and main-thread mode, from a relative and an absolute URL; each
//   captions an example scene of the 4-bit bundled model as expected; progress totals are
//   consistent (totalLoaded <= totalBytes at every event, equal to the real bytes at 'ready');
//   the second and third load make no request; a single-file model never asks for the index;
// * the cache cannot be poisoned: a corrupted cached entry is dropped and downloaded again; the
//   same offline is a clear 'bad-model' naming the file, and the next load online works; a
//   download cut in the middle or aborted leaves no entry behind and the next loads work;
// * a sharded checkpoint behind the SPA fallback (model.safetensors answered with HTML), and the
//   model inside the package (`Pinhole.load()`, `Pinhole.load('pinhole-shapes')`).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../tools/serve.mjs';
import { withBrowser, ROOT } from './lib.mjs';

const MODEL = path.join(ROOT, 'models/pinhole-shapes-q4');
const EXAMPLES = path.join(ROOT, 'models/pinhole-shapes/examples');
const SMALL = ['config.json', 'tokenizer.json', 'generation_config.json', 'preprocessor_config.json'];
const SHARDED = shardedCopy();

/** What a load of `dir` reads: every file's size, and the sum. */
function expectedFiles(dir, weights) {
  const sizes = Object.fromEntries([...SMALL, ...weights].map((f) => [f, fs.statSync(path.join(dir, f)).size]));
  return { sizes, weights, bytes: Object.values(sizes).reduce((a, b) => a + b, 0) };
}
const SINGLE = expectedFiles(MODEL, ['model.safetensors']);
const SCENE = 'scene_00000.png';
const CAPTION = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'expected.json'), 'utf8'))[SCENE].find((t) => t.task === 'caption').answer;

/**
 * The bundled model as a sharded checkpoint (two shards + model.safetensors.index.json, no
 * model.safetensors), in a temporary folder.
 */
function shardedCopy() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-sharded-'));
  for (const f of SMALL) fs.copyFileSync(path.join(MODEL, f), path.join(dir, f));
  const b = fs.readFileSync(path.join(MODEL, 'model.safetensors'));
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  const data = b.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const weightMap = {};
  let total = 0;
  [names.slice(0, names.length >> 1), names.slice(names.length >> 1)].forEach((list, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const h = { __metadata__: header.__metadata__ };
    const parts = [];
    let off = 0;
    for (const k of list) {
      const [s, e] = header[k].data_offsets;
      parts.push(data.subarray(s, e));
      h[k] = { ...header[k], data_offsets: [off, off + e - s] };
      off += e - s;
      total += e - s;
      weightMap[k] = file;
    }
    let json = JSON.stringify(h);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(dir, file), Buffer.concat([len, Buffer.from(json), ...parts]));
  });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  return dir;
}

/** A server with the test page at /tests/api.html and the model at /tests/model/ (so 'model/' is relative to the page). */
async function server(opts = {}) {
  const state = { offline: false, cut: null, requests: [] };
  const s = await startServer({
    port: 0,
    quiet: true,
    model: MODEL,
    mounts: { '/tests/': path.join(ROOT, 'tests/browser/pages'), '/tests/model/': MODEL, '/tests/sharded/': SHARDED, '/examples/': EXAMPLES },
    ...opts,
    intercept: (req, res) => {
      const p = new URL(req.url, 'http://x').pathname;
      state.requests.push(p);
      if (!p.startsWith('/tests/model/') && !p.startsWith('/tests/sharded/')) return false;
      if (state.offline) {
        req.socket.destroy();
        return true;
      }
      if (state.cut && p.endsWith(state.cut)) {
        // Headers for the whole file, half of it, then the connection drops.
        state.cut = null;
        const bytes = fs.readFileSync(path.join(MODEL, path.basename(p)));
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) });
        res.write(bytes.subarray(0, bytes.length >> 1), () => setTimeout(() => req.socket.destroy(), 50));
        return true;
      }
      return false;
    },
  });
  return Object.assign(s, { state });
}

/** In the page: load, caption one scene, dispose; returns the caption, the progress events and the error, if any. */
async function loadAndCaption(page, { url, worker = true, abortOnWeights = false }) {
  return page.evaluate(
    async ({ url, worker, scene, abortOnWeights }) => {
      const events = [];
      const ac = new AbortController();
      try {
        const vlm = await Pinhole.load(url, {
          worker,
          signal: ac.signal,
          onProgress: (e) => {
            events.push({ ...e });
            // Synchronous with worker: false: the engine sees the abort before its next read.
            if (abortOnWeights && e.file === 'model.safetensors') ac.abort();
          },
        });
        const blob = await (await fetch(`/examples/${scene}`)).blob();
        const out = await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 32 });
        vlm.dispose();
        return { text: out.text.trim(), events };
      } catch (e) {
        return { error: { code: e.code, message: e.message }, events };
      }
    },
    { url, worker, scene: SCENE, abortOnWeights },
  );
}

function checkProgress(events, label, want = SINGLE) {
  assert.ok(events.length > 0, `${label}: no progress events`);
  for (const e of events) {
    assert.ok(e.totalLoaded <= e.totalBytes, `${label}: totalLoaded ${e.totalLoaded} > totalBytes ${e.totalBytes} at ${JSON.stringify(e)}`);
    if (e.total !== null) assert.ok(e.loaded <= e.total, `${label}: loaded > total at ${JSON.stringify(e)}`);
  }
  const last = events[events.length - 1];
  assert.equal(last.phase, 'ready', `${label}: the last event is not 'ready'`);
  assert.equal(last.totalLoaded, want.bytes, `${label}: totalLoaded at ready is not the model's bytes`);
  assert.equal(last.totalBytes, want.bytes, `${label}: totalBytes at ready is not the model's bytes`);
  for (const w of want.weights) {
    const ev = events.filter((e) => e.file === w);
    assert.ok(ev.length > 0, `${label}: no event for ${w}`);
    assert.equal(ev[ev.length - 1].total, want.sizes[w], `${label}: the total of ${w}`);
    assert.equal(ev[ev.length - 1].loaded, want.sizes[w], `${label}: loaded of ${w}`);
  }
  return new Set(events.filter((e) => e.file).map((e) => e.phase));
}

/**
 * Three loads: with the worker from a relative URL (the first downloads), on the page from the
 * same relative URL, with the worker from the absolute URL; the second and third read the cache
 * without a request.
 */
async function threeLoads(page, s, label) {
  const loads = [
    [true, 'model/'],
    [false, 'model/'],
    [true, `${s.url}tests/model/`],
  ];
  for (const [i, [worker, url]] of loads.entries()) {
    const what = `${label}, load ${i + 1} (worker: ${worker}, ${url})`;
    const before = s.state.requests.length;
    const r = await loadAndCaption(page, { url, worker });
    assert.equal(r.error, undefined, `${what}: ${JSON.stringify(r.error)}`);
    assert.equal(r.text, CAPTION, what);
    const phases = checkProgress(r.events, what);
    const modelRequests = s.state.requests.slice(before).filter((p) => p.startsWith('/tests/model/'));
    assert.ok(!modelRequests.some((p) => p.endsWith('.index.json')), `${what}: asked for the index of a single-file model`);
    if (i === 0) {
      assert.deepEqual([...phases], ['download'], what);
    } else {
      assert.deepEqual([...phases], ['cache'], what);
      assert.deepEqual(modelRequests, [], `${what}: requests although the model is cached`);
    }
  }
}

async function cacheState(page) {
  return page.evaluate(() => Pinhole.cache.list());
}

/** Flips a byte near the end of the cached weights (tensor data, not the header). */
async function corruptCachedWeights(page) {
  return page.evaluate(async () => {
    const cache = await caches.open('pinhole-models-v1');
    for (const req of await cache.keys()) {
      if (!/model\.safetensors\?/.test(req.url)) continue;
      const res = await cache.match(req);
      const b = new Uint8Array(await res.arrayBuffer());
      b[b.length - 3] ^= 0x55;
      await cache.put(req, new Response(b, { headers: res.headers }));
      return req.url;
    }
    return null;
  });
}

test('loading from real servers (gzip, SPA fallback, plain) and a cache that cannot be poisoned', { timeout: 900_000 }, async () => {
  const spa = await server({ gzip: true, spa: true });
  const plain = await server();
  const cutter = await server({ gzip: true });
  try {
    await withBrowser({}, async ({ page, context, errors }) => {
      const statuses = [];
      context.on('response', (r) => statuses.push({ url: r.url(), status: r.status() }));

      // Compressing server with an SPA fallback (every probe answered with index.html).
      await page.goto(`${spa.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      await threeLoads(page, spa, 'gzip + SPA');
      const listed = await cacheState(page);
      assert.equal(listed.length, 1, JSON.stringify(listed));
      assert.equal(listed[0].complete, true);
      assert.equal(listed[0].bytes, SINGLE.bytes, `cache.list() bytes: ${JSON.stringify(listed)}`);

      // A sharded checkpoint behind the same fallback: model.safetensors is an HTML page there,
      // so the index is read; two loads.
      for (let i = 0; i < 2; i++) {
        const r = await loadAndCaption(page, { url: 'sharded/', worker: i === 0 });
        assert.equal(r.error, undefined, `sharded, load ${i + 1}: ${JSON.stringify(r.error)}`);
        assert.equal(r.text, CAPTION, `sharded, load ${i + 1}`);
        const sharded = expectedFiles(SHARDED, ['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
        sharded.weights = sharded.weights.slice(1);
        checkProgress(r.events, `sharded, load ${i + 1}`, sharded);
      }

      // A corrupted entry is dropped and downloaded again.
      assert.ok(await corruptCachedWeights(page), 'no cached weights to corrupt');
      let before = spa.state.requests.length;
      let r = await loadAndCaption(page, { url: 'model/' });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.equal(r.text, CAPTION, 'after a corrupted entry');
      assert.ok(spa.state.requests.slice(before).includes('/tests/model/model.safetensors'), 'the corrupted file was not downloaded again');
      checkProgress(r.events, 'after a corrupted entry');

      // The same offline: a clear bad-model naming the file; online again, loads work.
      assert.ok(await corruptCachedWeights(page));
      spa.state.offline = true;
      r = await loadAndCaption(page, { url: 'model/' });
      assert.equal(r.error?.code, 'bad-model', JSON.stringify(r));
      assert.match(r.error.message, /model\.safetensors/);
      spa.state.offline = false;
      r = await loadAndCaption(page, { url: 'model/' });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.equal(r.text, CAPTION, 'online again');

      // Plain server: no request is answered with an error (no 404 probe for the index).
      await page.goto(`${plain.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      statuses.length = 0;
      await threeLoads(page, plain, 'plain');
      // The model inside the package: Pinhole.load() with no URL, and by its name.
      for (const [url, worker] of [[undefined, true], ['pinhole-shapes', false]]) {
        const r = await loadAndCaption(page, { url, worker });
        assert.equal(r.error, undefined, `Pinhole.load(${url ?? ''}): ${JSON.stringify(r.error)}`);
        assert.equal(r.text, CAPTION, `Pinhole.load(${url ?? ''})`);
        checkProgress(r.events, `Pinhole.load(${url ?? ''})`);
      }
      assert.deepEqual(statuses.filter((x) => x.status >= 400), [], 'error responses while loading');

      // A download cut in the middle, then one aborted: nothing is left in the cache, and the
      // next loads work (the first downloads, the second reads the cache).
      await page.goto(`${cutter.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      cutter.state.cut = 'model.safetensors';
      r = await loadAndCaption(page, { url: 'model/' });
      assert.equal(r.error?.code, 'network', JSON.stringify(r));
      assert.deepEqual(await cacheState(page), [], 'a cut download left entries in the cache');
      r = await loadAndCaption(page, { url: 'model/', worker: false, abortOnWeights: true });
      assert.equal(r.error?.code, 'aborted', JSON.stringify(r));
      assert.deepEqual(await cacheState(page), [], 'an aborted download left entries in the cache');
      before = cutter.state.requests.length;
      for (let i = 0; i < 2; i++) {
        r = await loadAndCaption(page, { url: 'model/' });
        assert.equal(r.error, undefined, JSON.stringify(r.error));
        assert.equal(r.text, CAPTION, `after a cut download, load ${i + 1}`);
        checkProgress(r.events, `after a cut download, load ${i + 1}`);
      }
      assert.equal(cutter.state.requests.slice(before).filter((p) => p === '/tests/model/model.safetensors').length, 1);
      assert.deepEqual(errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await Promise.all([spa.close(), plain.close(), cutter.close()]);
    fs.rmSync(SHARDED, { recursive: true, force: true });
  }
});
