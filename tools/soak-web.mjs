#!/usr/bin/env node
// Browser soak (issue #17): N captions in one page through the npm package (Worker, wasm,
// SwiftShader WebGPU), alternating the bundled f32 model (`/model/`) and the 4-bit model inside
// the package (`Pinhole.load()`), over images of three sizes. Every --every captions it samples
// the resident memory of each Chromium process of this run (/proc/PID/status VmRSS; the GPU
// process holds SwiftShader's buffers, so its RSS is the GPU-bytes figure here, the renderer's
// holds the worker's wasm memory) and prints one line; at the end a summary of the first
// sample after warm-up against the last. Linux only (reads /proc).
//
//   bash tools/build-web.sh && node tools/soak-web.mjs --n 1000 --every 100
//
// A model switch reloads the engine's model each time (the previous one is dropped), so a leak
// in load/unload shows as growth too. Not run by CI (minutes to hours on SwiftShader).

import fs from 'node:fs';
import path from 'node:path';
import { launch } from '../tests/browser/lib.mjs';
import { startServer, ROOT } from './serve.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const n = Number(opt('n', 1000));
const every = Number(opt('every', 100));
const switchEvery = Number(opt('switch-every', 50));
const IMAGES = [
  'tests/fixtures/images/shapes_50x37.png',
  'tests/fixtures/images/shapes_64.png',
  'models/pinhole-shapes/examples/scene_00000.png',
].map((p) => path.join(ROOT, p));
for (const p of IMAGES) if (!fs.existsSync(p)) throw new Error(`missing ${p}`);

/** VmRSS in MiB of this run's Chromium processes by process type (browser, renderer, gpu-process,
 * utility …): the browser process is the one whose command line names this run's profile
 * directory without a --type; the others are its descendants. */
function chromiumRss(profile) {
  const procs = new Map();
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/); // children rewrite argv as one string
      const ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      procs.set(Number(pid), { cmd, ppid, rss: m ? Number(m[1]) / 1024 : 0 });
    } catch {
      // the process ended while being read
    }
  }
  const ours = new Set(
    [...procs].filter(([, p]) => p.cmd.some((a) => a.includes(profile)) && !p.cmd.some((a) => a.startsWith('--type='))).map(([pid]) => pid),
  );
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) if (!ours.has(pid) && ours.has(p.ppid)) (ours.add(pid), (grew = true));
  }
  const out = {};
  for (const pid of ours) {
    const p = procs.get(pid);
    const type = (p.cmd.find((a) => a.startsWith('--type=')) || '--type=browser').slice(7);
    const sub = p.cmd.find((a) => a.startsWith('--utility-sub-type='));
    const kind = sub ? sub.split('.').pop() : type;
    out[kind] = (out[kind] || 0) + p.rss;
  }
  return out;
}

const server = await startServer({
  port: 0,
  quiet: true,
  mounts: { '/tests/': path.join(ROOT, 'tests/browser/pages'), '/soak/': path.join(ROOT) },
});
const b = await launch();
const profile = b.userDataDir;
const t0 = Date.now();
const samples = [];
try {
  const { page } = b;
  await page.goto(`${server.url}tests/api.html`);
  await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
  const imgs = IMAGES.map((p) => `/soak/${path.relative(ROOT, p)}`);
  const texts = new Map();
  for (let i = 0; i < n; i += every) {
    const got = await page.evaluate(
      async ({ start, count, imgs, switchEvery }) => {
        const out = [];
        for (let k = start; k < start + count; k++) {
          const which = Math.floor(k / switchEvery) % 2 ? 'q4' : 'f32';
          if (window.which !== which) {
            if (window.vlm) await window.vlm.dispose?.();
            window.vlm = which === 'q4' ? await Pinhole.load() : await Pinhole.load('/model/');
            window.which = which;
          }
          const img = imgs[k % imgs.length];
          const blob = await (await fetch(img)).blob();
          const r = await window.vlm.generate(blob, { prompt: 'caption en', maxNewTokens: 24 });
          out.push(`${which} ${img}\t${r.text.trim()}`);
        }
        return out;
      },
      { start: i, count: Math.min(every, n - i), imgs, switchEvery },
    );
    // The same model and image must caption the same way every time (no state leaks between calls).
    for (const line of got) {
      const [k, text] = line.split('\t');
      if (texts.has(k) && texts.get(k) !== text) throw new Error(`caption changed for ${k}: "${texts.get(k)}" then "${text}"`);
      texts.set(k, text);
    }
    const rss = chromiumRss(profile);
    const done = Math.min(i + every, n);
    samples.push({ done, rss });
    const s = (Date.now() - t0) / 1000;
    const parts = Object.entries(rss).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    console.log(`${done}/${n} captions, ${s.toFixed(0)} s (${(s / done).toFixed(2)} s each); RSS MiB: ${parts}`);
  }
  const first = samples[Math.min(1, samples.length - 1)];
  const last = samples[samples.length - 1];
  console.log(`\nafter warm-up (${first.done} captions) -> end (${last.done}):`);
  for (const k of Object.keys(last.rss)) {
    console.log(`  ${k}: ${(first.rss[k] ?? 0).toFixed(1)} -> ${last.rss[k].toFixed(1)} MiB`);
  }
  console.log(`${texts.size} distinct (model, image) pairs, each captioned identically every time`);
} finally {
  await b.close();
  await server.close();
}
