#!/usr/bin/env node
// Takes docs/demo.png: the demo in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core, SwiftShader WebGPU) with the default model, after a detect prompt on an
// example scene, so the screenshot shows the streamed output, the boxes and the stats.
//
// Usage: node tools/screenshot.mjs [--out docs/demo.png] [--prompt "detect circle"]
//        [--image www/examples/three-shapes.png] [--model DIR] [--width 1100]
// Needs pkg/ built (npm start or tools/build-web.sh).

import fs from 'node:fs';
import path from 'node:path';
import { ROOT, defaultModelDir, launch, waitForState, errorText } from '../tests/browser/lib.mjs';
import { startServer } from './serve.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const out = path.resolve(opt('out', path.join(ROOT, 'docs/demo.png')));
const prompt = opt('prompt', 'detect circle');
const image = path.resolve(opt('image', path.join(ROOT, 'www/examples/three-shapes.png')));
const model = path.resolve(opt('model', defaultModelDir()));
const width = Number(opt('width', 1100));

const server = await startServer({ port: 0, quiet: true, model });
const b = await launch();
try {
  const { page } = b;
  await page.setViewportSize({ width, height: 900 });
  await page.goto(server.url);
  const ready = await waitForState(page, ['ready', 'error'], 300_000);
  if (ready !== 'ready') throw new Error(`the model did not load: ${await errorText(page)}`);
  await page.fill('#prompt', prompt);
  await page.setInputFiles('#file', image);
  const state = await waitForState(page, ['done', 'error'], 300_000);
  if (state !== 'done') throw new Error(`the run failed: ${await errorText(page)}`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // Written to .partial and renamed, so a failed run never leaves half a PNG behind.
  await page.screenshot({ path: `${out}.partial`, fullPage: true, type: 'png' });
  fs.renameSync(`${out}.partial`, out);
  console.log(`wrote ${path.relative(ROOT, out)}: "${prompt}" -> ${JSON.stringify(await page.textContent('#output'))}`);
} finally {
  await b.close();
  await server.close();
}
