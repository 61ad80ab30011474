#!/usr/bin/env node
// Cold load and time to first caption: headless Chromium (the npm package, SwiftShader WebGPU)
// against the native CLI on the same machine, same model, image and prompt. Prints a Markdown
// table for BENCHMARKS.md and the raw numbers as JSON.
//
// Browser, per run a fresh --user-data-dir (empty model cache, cold HTTP cache), the plain API
// page (tests/browser/pages/api.html) served by tools/serve.mjs on 127.0.0.1:
//   cold load        = Pinhole.load(url) until it resolves (wasm + worker start, download,
//                      upload of every tensor), empty cache;
//   warm load        = a second Pinhole.load of the same URL in the same page (model cache);
//   first caption    = the first generate() after the cold load;
//   time to first caption = navigation start -> first caption text (page, package, wasm,
//                      model, caption: everything a first visit waits for).
// Native: `pinhole generate --json` (release build), per run a fresh process:
//   cold load = its `load_ms` (adapter + device + weights), time to first caption = process
//   wall time (start to exit).
//
// Memory, per browser run: the engine's wasm memory after the load and the loader's peak for
// weights (`Pinhole.memory`), the page's JS heap (largest JSHeapUsedSize of CDP
// Performance.getMetrics, sampled every 250 ms: the engine's heap with `--mode page`), and the
// peak resident memory (VmHWM) of Chromium's renderer processes (page, worker, wasm memory) and
// of its GPU process (where SwiftShader keeps the GPU buffers: the weights).
//
// Usage: node tools/bench-web.mjs [--runs 3] [--model DIR] [--image PNG] [--prompt "caption en"]
//        [--max-new-tokens 32] [--cli target/release/pinhole] [--mode worker|page]
//        [--warm true|false] [--native true|false] [--max-host-bytes N]
// Needs pkg/ (tools/build-web.sh) and a release CLI (cargo build --release -p pinhole-cli).
// For a real-size model: --warm false (a second load of 1 GB doubles the run) and few tokens.

import path from 'node:path';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { ROOT, defaultModelDir, launch } from '../tests/browser/lib.mjs';
import { startServer } from './serve.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const runs = Number(opt('runs', 3));
const model = path.resolve(opt('model', defaultModelDir()));
const image = path.resolve(opt('image', path.join(ROOT, 'www/examples/three-shapes.png')));
const prompt = opt('prompt', 'caption en');
const maxNewTokens = Number(opt('max-new-tokens', 32));
const targetDir = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const cli = path.resolve(opt('cli', path.join(targetDir, 'release/pinhole')));
const mode = opt('mode', 'worker');
const warm = opt('warm', 'true') !== 'false';
const withNative = opt('native', 'true') !== 'false';
const maxHostBytes = opt('max-host-bytes', null) === null ? undefined : Number(opt('max-host-bytes', null));
if (!['worker', 'page'].includes(mode)) {
  console.error(`--mode is worker or page, not ${mode}`);
  process.exit(2);
}

/** Peak resident bytes (VmHWM) of Chromium's processes of one --type (renderer, gpu-process). */
function peakRss(type) {
  let peak = 0;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chrom') || !cmd.includes(`--type=${type}`)) continue;
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      /* the process ended */
    }
  }
  return peak;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function browserRun() {
  const server = await startServer({
    port: 0,
    quiet: true,
    model,
    mounts: { '/tests/': path.join(ROOT, 'tests/browser/pages'), '/bench/': path.dirname(image) },
  });
  const b = await launch();
  let heapPeak = 0;
  let sampler = null;
  try {
    await b.page.goto(`${server.url}tests/api.html`);
    await b.page.waitForFunction(() => window.apiReady === true, null, { timeout: 60_000 });
    const cdp = await b.context.newCDPSession(b.page);
    await cdp.send('Performance.enable');
    const sample = async () => {
      const { metrics } = await cdp.send('Performance.getMetrics');
      heapPeak = Math.max(heapPeak, metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0);
    };
    sampler = setInterval(() => sample().catch(() => {}), 250);
    const r = await b.page.evaluate(
      async ({ img, prompt, maxNewTokens, worker, warm, maxHostBytes }) => {
        const t0 = performance.now();
        const vlm = await Pinhole.load('/model/', { worker, maxHostBytes });
        const t1 = performance.now();
        const memory = vlm.memory;
        const blob = await (await fetch(img)).blob();
        const t2 = performance.now();
        const out = await vlm.generate(blob, { prompt, maxNewTokens });
        const t3 = performance.now();
        let warmLoadMs = Number.NaN;
        if (warm) {
          vlm.dispose();
          const again = await Pinhole.load('/model/', { worker, maxHostBytes });
          warmLoadMs = performance.now() - t3;
          again.dispose();
        } else {
          vlm.dispose();
        }
        const support = await Pinhole.support();
        return {
          coldLoadMs: t1 - t0,
          firstCaptionMs: t3 - t2,
          timeToFirstCaptionMs: t3 - (t2 - t1), // since navigation start, minus the image fetch
          warmLoadMs,
          timings: out.timings,
          text: out.text,
          tokenIds: out.tokenIds,
          tokens: out.tokenIds.length,
          adapter: support.adapter,
          memory,
        };
      },
      { img: `/bench/${path.basename(image)}`, prompt, maxNewTokens, worker: mode === 'worker', warm, maxHostBytes },
    );
    await sample().catch(() => {});
    return { ...r, jsHeapPeakBytes: heapPeak, rendererPeakRss: peakRss('renderer'), gpuProcessPeakRss: peakRss('gpu-process') };
  } finally {
    if (sampler) clearInterval(sampler);
    await b.close();
    await server.close();
  }
}

function nativeRun() {
  const t0 = performance.now();
  const r = spawnSync(cli, ['generate', '--model', model, '--image', image, '--prompt', prompt, '--max-new-tokens', String(maxNewTokens), '--json'], {
    encoding: 'utf8',
    env: { XDG_RUNTIME_DIR: '/tmp', ...process.env },
  });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`native CLI failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return { coldLoadMs: j.timings.load_ms, timeToFirstCaptionMs: wall, timings: j.timings, text: j.text, tokens: j.token_ids.length, adapter: j.adapter };
}

if (withNative && !fs.existsSync(cli)) {
  console.error(`no release CLI at ${cli}: run cargo build --release -p pinhole-cli (or pass --cli)`);
  process.exit(2);
}
const browser = [];
const native = [];
for (let i = 0; i < runs; i++) {
  if (withNative) native.push(nativeRun());
  browser.push(await browserRun());
  console.error(`run ${i + 1}/${runs}: browser ${browser[i].timeToFirstCaptionMs.toFixed(0)} ms${withNative ? `, native ${native[i].timeToFirstCaptionMs.toFixed(0)} ms` : ''}`);
}
if (withNative && browser.some((b) => b.text !== native[0].text)) console.error(`warning: captions differ: browser ${JSON.stringify(browser[0].text)} vs native ${JSON.stringify(native[0].text)}`);

const f = (v) => (Number.isFinite(v) ? v.toFixed(0) : '–');
const med = (xs, k) => median(xs.map((x) => x[k]));
const medT = (xs, k) => median(xs.map((x) => x.timings[k]));
const modelBytes = fs.readdirSync(model).reduce((n, f2) => n + fs.statSync(path.join(model, f2)).size, 0);
console.log(`model ${path.relative(ROOT, model)} (${(modelBytes / 1024 / 1024).toFixed(1)} MiB on disk), image ${path.relative(ROOT, image)}, prompt "${prompt}", max ${maxNewTokens} new tokens (${browser[0].tokens} generated), engine in the ${mode === 'worker' ? 'worker' : 'page'}, median of ${runs} runs\n`);
console.log('| | cold load ms | warm load ms | time to first caption ms | image encode ms | prefill ms | tokens/s |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
console.log(`| headless Chromium, ${browser[0].adapter ? Object.values(browser[0].adapter).filter(Boolean).join(' ') : 'WebGPU'} (WebGPU, fallback) | ${f(med(browser, 'coldLoadMs'))} | ${f(med(browser, 'warmLoadMs'))} | ${f(med(browser, 'timeToFirstCaptionMs'))} | ${f(medT(browser, 'imageEncodeMs'))} | ${f(medT(browser, 'prefillMs'))} | ${medT(browser, 'tokensPerSecond').toFixed(2)} |`);
if (withNative) {
  const na = native[0].adapter || {};
  console.log(`| native CLI (${path.basename(cli)}), ${typeof na === 'string' ? na : `${na.name} (${na.backend}${na.software ? ', software' : ''})`} | ${f(med(native, 'coldLoadMs'))} | – | ${f(med(native, 'timeToFirstCaptionMs'))} | ${f(medT(native, 'image_encode_ms'))} | ${f(medT(native, 'prefill_ms'))} | ${medT(native, 'tokens_per_s').toFixed(2)} |`);
}
const mib = (v) => (Number.isFinite(v) && v > 0 ? (v / 1024 / 1024).toFixed(1) : '–');
console.log('\n| browser memory (MiB, largest of the runs) | wasm memory after load | loader peak (bound) | JS heap of the page | renderer processes, peak RSS | GPU process, peak RSS |');
console.log('|---|---:|---:|---:|---:|---:|');
const mx = (g) => Math.max(...browser.map(g));
console.log(`| engine in the ${mode} | ${mib(mx((b) => b.memory?.wasmBytes ?? 0))} | ${mib(mx((b) => b.memory?.loaderPeakBytes ?? 0))} (${mib(browser[0].memory?.hostBoundBytes)}) | ${mib(mx((b) => b.jsHeapPeakBytes))} | ${mib(mx((b) => b.rendererPeakRss))} | ${mib(mx((b) => b.gpuProcessPeakRss))} |`);
console.log(`\n${JSON.stringify({ browser, native })}`);
