#!/usr/bin/env node
// The headless-Chromium column of the bundled model's evaluation (tools/eval_shapes.py): answers
// every item of an evaluation folder through the npm package (Worker, wasm, SwiftShader WebGPU),
// exactly as a web app would, and writes them as the JSON that `eval_shapes.py --answers` reads
// ("<image file>\t<prompt>" -> answer text).
//
//   python tools/eval_shapes.py --model models/pinhole-shapes --out /tmp/eval ...   # items + scenes
//   node tools/eval-web.mjs --eval /tmp/eval --model models/pinhole-shapes --out /tmp/eval/web.json
//   python tools/eval_shapes.py ... --answers "pinhole Chromium=/tmp/eval/web.json"
//
// Options: --limit N (first N scenes only), --tasks caption,count,detect (task by task, in
// that order), --max-new-tokens 48 (what eval_shapes.py uses).
// Resumable: answers already in --out are kept and skipped, and the file is rewritten every
// 20 answers, so an interrupted run (SwiftShader is slow) continues where it stopped.
// Needs pkg/ (tools/build-web.sh) and Debian's chromium (tests/browser/run.sh installs it).

import fs from 'node:fs';
import path from 'node:path';
import { launch } from '../tests/browser/lib.mjs';
import { startServer, ROOT } from './serve.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const evalDir = opt('eval');
const outFile = opt('out');
if (!evalDir || !outFile) {
  console.error('usage: node tools/eval-web.mjs --eval EVAL_DIR --out ANSWERS.json [--model DIR] [--limit N]');
  process.exit(2);
}
const model = path.resolve(opt('model', path.join(ROOT, 'models/pinhole-shapes')));
const limit = Number(opt('limit', Infinity));
const maxNewTokens = Number(opt('max-new-tokens', 48));
// Which tasks, in this order over all scenes: e.g. `caption` first, then `count,detect` on a
// second (resumed) run, so a run cut short still covers its first task on every scene.
const tasks = opt('tasks', 'caption,count,detect').split(',');

const items = JSON.parse(fs.readFileSync(path.join(evalDir, 'items.json'), 'utf8'));
const images = [...new Set(items.map((it) => it.image))].slice(0, limit);
const wanted = new Set(images);
const key = (it) => `${it.image}\t${it.prompt}`;
const answers = fs.existsSync(outFile) ? JSON.parse(fs.readFileSync(outFile, 'utf8')) : {};
const todo = tasks.flatMap((t) => items.filter((it) => it.task === t && wanted.has(it.image) && !(key(it) in answers)));
const save = () => {
  const tmp = `${outFile}.partial`;
  fs.writeFileSync(tmp, JSON.stringify(answers, null, 1) + '\n');
  fs.renameSync(tmp, outFile);
};

const server = await startServer({
  port: 0,
  quiet: true,
  model,
  mounts: { '/tests/': path.join(ROOT, 'tests/browser/pages'), '/scenes/': path.join(evalDir, 'scenes') },
});
const b = await launch();
const t0 = Date.now();
try {
  const { page } = b;
  await page.goto(`${server.url}tests/api.html`);
  await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
  const adapter = await page.evaluate(async () => {
    window.vlm = await Pinhole.load('/model/');
    const a = await navigator.gpu.requestAdapter();
    return a ? `${a.info.vendor} ${a.info.architecture} ${a.info.description}`.trim() : 'none';
  });
  console.error(`adapter: ${adapter}; ${todo.length} answers to go (${Object.keys(answers).length} kept)`);
  // a few items per page.evaluate: fewer round trips, and progress still shows
  for (let i = 0; i < todo.length; i += 6) {
    const jobs = todo.slice(i, i + 6).map((it) => ({ image: it.image, prompt: it.prompt }));
    const got = await page.evaluate(
      async ({ jobs, n }) => {
        const out = [];
        for (const j of jobs) {
          const blob = await (await fetch(`/scenes/${j.image}`)).blob();
          const r = await window.vlm.generate(blob, { prompt: j.prompt, maxNewTokens: n });
          out.push(r.text.trim());
        }
        return out;
      },
      { jobs, n: maxNewTokens },
    );
    jobs.forEach((j, k) => (answers[key(j)] = got[k]));
    const done = i + jobs.length;
    if (done % 24 === 0 || done === todo.length) {
      save();
      const s = (Date.now() - t0) / 1000;
      console.error(`${done}/${todo.length} answers, ${s.toFixed(0)} s (${(s / done).toFixed(2)} s each)`);
    }
  }
  save();
} finally {
  await b.close();
  await server.close();
}
