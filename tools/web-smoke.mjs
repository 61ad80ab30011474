// The npm package in headless Chromium (SwiftShader WebGPU), against the transformers fixture
// tests/fixtures/pg1-mqa: the browser must generate exactly the ids transformers generated.
// Also checks the API around it: support(), progress events, worker and main-thread modes,
// stream(), abort, typed errors, a Rust panic recovered from, and a second load served from
// Cache Storage with no network request.
//
//   bash tools/build-web.sh && node tools/web-smoke.mjs [--kernels] [--quick]
//
// Needs playwright-core (npm) and Debian's chromium (/usr/bin/chromium or PINHOLE_CHROMIUM);
// no browser is downloaded. Exit status 0 when every check passed. The demo's browser tests
// (tests/browser/) cover the site; this is the package's own end-to-end check.

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.PINHOLE_CHROMIUM || '/usr/bin/chromium';
const args = new Set(process.argv.slice(2));

const TYPES = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.html': 'text/html',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
};

/** A static server of the repository; counts requests per path. */
function serve() {
  const hits = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    hits.push(url.pathname);
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>pinhole smoke</title>');
      return;
    }
    const file = path.join(ROOT, decodeURIComponent(url.pathname));
    if (!file.startsWith(ROOT) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    const size = fs.statSync(file).size;
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': size });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hits, url: `http://127.0.0.1:${server.address().port}/` })));
}

const results = [];
function check(name, ok, detail = '') {
  results.push({ name, ok });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

async function main() {
  const { chromium } = await import('playwright-core');
  if (!fs.existsSync(path.join(ROOT, 'pkg/pinhole_web_bg.wasm'))) throw new Error('pkg/ is missing: run bash tools/build-web.sh first');
  const expected = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/pg1-mqa/expected.json'), 'utf8'));
  const want = expected.generated_ids;
  const { server, hits, url } = await serve();
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-smoke-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (process.env.PINHOLE_SMOKE_VERBOSE || m.type() === 'error') console.log(`  [console.${m.type()}] ${m.text()}`);
  });
  try {
    await page.goto(url);
    await page.evaluate(async () => {
      window.P = await import('/js/index.js');
    });

    const support = await page.evaluate(() => P.Pinhole.support());
    check('support() reports WebGPU', support.webgpu === true, JSON.stringify(support.adapter));
    check('support() reports the software adapter as fallback', support.fallbackAdapter === true);

    for (const worker of args.has('--quick') ? [true] : [true, false]) {
      const t0 = Date.now();
      const r = await page.evaluate(
        async ({ worker, n }) => {
          const events = [];
          const vlm = await P.Pinhole.load('/tests/fixtures/pg1-mqa/model/', { worker, dtype: 'f32', onProgress: (e) => events.push(e) });
          const blob = await (await fetch('/tests/fixtures/images/shapes_64.png')).blob();
          const out = await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: n });
          const pieces = [];
          for await (const p of vlm.stream(blob, { prompt: 'caption en', maxNewTokens: n })) pieces.push(p);
          window.vlm = vlm;
          window.blob = blob;
          return { events, out, pieces, info: vlm.info, adapter: vlm.adapter };
        },
        { worker, n: want.length },
      );
      const mode = worker ? 'worker' : 'main thread';
      check(`[${mode}] load + generate in ${Date.now() - t0} ms: ids equal transformers'`, JSON.stringify(r.out.tokenIds) === JSON.stringify(want), `got ${JSON.stringify(r.out.tokenIds)} want ${JSON.stringify(want)} text=${JSON.stringify(r.out.text)}`);
      check(`[${mode}] stream pieces add up to the text`, r.pieces.map((p) => p.text).join('') === r.out.text && r.pieces.length === r.out.tokenIds.length);
      const w = r.events.filter((e) => e.file === 'model.safetensors');
      const last = w[w.length - 1];
      check(`[${mode}] progress events for the weights`, w.length >= 2 && last.loaded === last.total && r.events.at(-1).phase === 'ready', JSON.stringify(last));
      check(`[${mode}] timings`, ['imageEncodeMs', 'prefillMs', 'decodeMs', 'tokensPerSecond'].every((k) => typeof r.out.timings[k] === 'number'), JSON.stringify(r.out.timings));
      check(`[${mode}] engine adapter is software`, r.adapter?.isSoftware === true, r.adapter?.name);

      // Errors: a bad image, an over-long request, an abort; the engine keeps working.
      const errs = await page.evaluate(async () => {
        const codes = {};
        const grab = async (k, p) => {
          try {
            await p;
            codes[k] = 'resolved';
          } catch (e) {
            codes[k] = `${e.name}:${e.code}`;
          }
        };
        await grab('badImage', vlm.generate(new Blob([new Uint8Array([1, 2, 3, 4, 5])], { type: 'image/png' })));
        await grab('tooLong', vlm.generate(blob, { maxNewTokens: 100000 }));
        await grab('zeroTokens', vlm.generate(blob, { maxNewTokens: 0 }));
        const ac = new AbortController();
        let n = 0;
        const it = (async () => {
          for await (const _ of vlm.stream(blob, { maxNewTokens: 12, signal: ac.signal })) if (++n === 2) ac.abort();
        })();
        await grab('abort', it);
        const pre = new AbortController();
        pre.abort();
        await grab('preAborted', vlm.generate(blob, { signal: pre.signal }));
        const after = await vlm.generate(blob, { maxNewTokens: 3 });
        codes.after = after.tokenIds.length;
        codes.streamedBeforeAbort = n;
        return codes;
      });
      check(`[${mode}] bad image -> bad-image`, errs.badImage === 'PinholeError:bad-image', errs.badImage);
      check(`[${mode}] too long -> prompt-too-long`, errs.tooLong === 'PinholeError:prompt-too-long', errs.tooLong);
      check(`[${mode}] maxNewTokens 0 -> bad-request`, errs.zeroTokens === 'PinholeError:bad-request', errs.zeroTokens);
      check(`[${mode}] abort mid-stream -> aborted`, errs.abort === 'PinholeError:aborted' && errs.streamedBeforeAbort === 2, JSON.stringify(errs));
      check(`[${mode}] pre-aborted signal -> aborted`, errs.preAborted === 'PinholeError:aborted', errs.preAborted);
      check(`[${mode}] works after the errors`, errs.after === 3, JSON.stringify(errs));

      // A Rust panic: the call rejects with 'internal', the next call works (fresh instance).
      const pan = await page.evaluate(async (n) => {
        let code;
        try {
          await vlm._debugPanic();
          code = 'resolved';
        } catch (e) {
          code = `${e.name}:${e.code}`;
        }
        const out = await vlm.generate(blob, { prompt: 'caption en', maxNewTokens: n });
        vlm.dispose();
        let disposed;
        try {
          await vlm.generate(blob);
        } catch (e) {
          disposed = e.code;
        }
        return { code, ids: out.tokenIds, disposed };
      }, want.length);
      check(`[${mode}] panic -> internal, then the same ids again`, pan.code === 'PinholeError:internal' && JSON.stringify(pan.ids) === JSON.stringify(want), JSON.stringify(pan));
      check(`[${mode}] dispose -> disposed`, pan.disposed === 'disposed');
    }

    // The second load comes from Cache Storage: no request for any model file.
    const before = hits.length;
    const cached = await page.evaluate(async (n) => {
      const list = await P.Pinhole.cache.list();
      const events = [];
      const vlm = await P.Pinhole.load('/tests/fixtures/pg1-mqa/model/', { dtype: 'f32', onProgress: (e) => events.push(e.phase) });
      const blob = await (await fetch('/tests/fixtures/images/shapes_64.png')).blob();
      const out = await vlm.generate(blob, { maxNewTokens: n });
      vlm.dispose();
      return { list, phases: [...new Set(events)], ids: out.tokenIds };
    }, want.length);
    const modelHits = hits.slice(before).filter((p) => p.includes('/pg1-mqa/model/'));
    check('cache.list() shows the model complete', cached.list.some((m) => m.url.endsWith('/pg1-mqa/model/') && m.complete && m.files.some((f) => f.name === 'model.safetensors')), JSON.stringify(cached.list));
    check('second load: no model request, phases from cache', modelHits.length === 0 && !cached.phases.includes('download'), `${modelHits.length} requests ${JSON.stringify(cached.phases)}`);
    check('second load: same ids', JSON.stringify(cached.ids) === JSON.stringify(want));
    const del = await page.evaluate(async () => {
      const n = await P.Pinhole.cache.delete('/tests/fixtures/pg1-mqa/model/');
      return { n, left: await P.Pinhole.cache.list() };
    });
    check('cache.delete(url) removes the folder', del.n >= 5 && del.left.length === 0, JSON.stringify(del));

    // A missing model folder -> bad-model; an unreachable host -> network.
    const codes = await page.evaluate(async () => {
      const out = {};
      for (const [k, src] of [
        ['missing', '/tests/fixtures/nope/'],
        ['offline', 'http://127.0.0.1:9/model/'],
      ]) {
        try {
          await P.Pinhole.load(src);
          out[k] = 'resolved';
        } catch (e) {
          out[k] = e.code;
        }
      }
      return out;
    });
    check('missing folder -> bad-model', codes.missing === 'bad-model', codes.missing);
    check('unreachable host -> network', codes.offline === 'network', codes.offline);

    if (args.has('--kernels')) {
      const t0 = Date.now();
      const report = await page.evaluate(() => P.Pinhole.runKernelTests());
      const failed = report.cases.filter((c) => !c.passed);
      check(`kernel cases under WebGPU (${report.ran} runs on ${report.devices} devices, ${Date.now() - t0} ms)`, report.ok, failed.map((c) => `${c.name}: ${c.message}`).join('; '));
    }
    check('no uncaught page errors', pageErrors.length === 0, pageErrors.join(' | '));
  } finally {
    await context.close().catch(() => {});
    server.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  const bad = results.filter((r) => !r.ok);
  console.log(`\n${results.length - bad.length}/${results.length} checks passed`);
  process.exit(bad.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
