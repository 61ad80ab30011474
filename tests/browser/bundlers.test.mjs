// The packed npm package in real web apps (issue: the npm package in real web apps). One
// `npm pack` tarball, installed offline into one app folder, then used by:
//   (a) Vite with the default config (no vite.config): `vite` dev, then `vite build` + `vite preview`;
//   (b) a webpack 5 bundle;
//   (c) a plain page with an import map and no bundler.
// Each runs the README's JavaScript example verbatim (copied from README.md as main.js: the
// model inside the package captions an example scene) plus two more loads through the same
// package: a relative model URL with the worker, an absolute one with `worker: false`; so three
// loads in one profile, each with the expected caption. One Chromium for all of them.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startServer } from '../../tools/serve.mjs';
import { withBrowser, ROOT } from './lib.mjs';

const MODEL = path.join(ROOT, 'models/pinhole-shapes-q4');
const MODEL_FILES = ['config.json', 'tokenizer.json', 'generation_config.json', 'preprocessor_config.json', 'model.safetensors'];
const EXAMPLES = path.join(ROOT, 'models/pinhole-shapes/examples');
const SCENE = 'scene_00001.png';
const CAPTION = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'expected.json'), 'utf8'))[SCENE].find((t) => t.task === 'caption').answer;

/** The README's JavaScript example: the ```js block after the `main.js` marker. */
function readmeMain() {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- main\.js:[^\n]*-->\n```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README.md has no main.js example');
  return m[1];
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The app folder: the tarball installed, the page, README's main.js, the scene and a model folder. */
function makeApp(tmp) {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], ROOT));
  const tarball = path.join(tmp, packed[0].filename);
  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'pinhole-test-app', private: true, type: 'module' }));
  run('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], app);
  const page = fs.readFileSync(path.join(ROOT, 'tests/browser/app/index.html'), 'utf8');
  const main = readmeMain();
  const harness = fs.readFileSync(path.join(ROOT, 'tests/browser/app/harness.js'), 'utf8');
  // Vite: index.html at the root, static files in public/.
  fs.writeFileSync(path.join(app, 'index.html'), page);
  fs.writeFileSync(path.join(app, 'main.js'), main);
  fs.writeFileSync(path.join(app, 'harness.js'), harness);
  const statics = (dir) => {
    fs.mkdirSync(path.join(dir, 'model'), { recursive: true });
    fs.copyFileSync(path.join(EXAMPLES, SCENE), path.join(dir, 'scene.png'));
    for (const f of MODEL_FILES) fs.copyFileSync(path.join(MODEL, f), path.join(dir, 'model', f));
  };
  statics(path.join(app, 'public'));
  // No bundler: the same page with an import map, served from the app folder.
  const plain = path.join(app, 'plain');
  fs.mkdirSync(plain);
  const importMap = '<script type="importmap">{ "imports": { "pinhole": "../node_modules/pinhole/js/index.js" } }</script>';
  fs.writeFileSync(path.join(plain, 'index.html'), page.replace('<!-- IMPORTMAP -->', importMap));
  fs.writeFileSync(path.join(plain, 'main.js'), main);
  fs.writeFileSync(path.join(plain, 'harness.js'), harness);
  statics(plain);
  return { app, plain, statics };
}

/** webpack 5 (production): main.js and harness.js bundled; the page loads them as classic scripts. */
async function webpackBuild(app, statics) {
  const { default: webpack } = await import('webpack');
  const out = path.join(app, 'dist-webpack');
  const stats = await new Promise((resolve, reject) =>
    webpack({
      mode: 'production',
      context: app,
      entry: { main: './main.js', harness: './harness.js' },
      output: { path: out, clean: true },
      performance: { hints: false },
    }).run((err, s) => (err ? reject(err) : resolve(s))),
  );
  assert.ok(!stats.hasErrors(), stats.toString({ all: false, errors: true }));
  const page = fs.readFileSync(path.join(app, 'index.html'), 'utf8').replaceAll('type="module" src=', 'defer src=');
  fs.writeFileSync(path.join(out, 'index.html'), page);
  statics(out);
  return out;
}

/** In the page: README's main.js captions; then a relative URL with the worker and an absolute one without. */
async function checkApp(page, url, label) {
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('#caption')?.textContent, null, { timeout: 300_000 });
  const readme = await page.evaluate(() => document.querySelector('#caption').textContent);
  assert.equal(readme.trim(), CAPTION, `${label}: the README example's caption`);
  await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 30_000 });
  const relative = await page.evaluate(() => window.captionWith({ source: 'model/', worker: true }));
  assert.equal(relative.trim(), CAPTION, `${label}: relative model URL, worker`);
  const absolute = await page.evaluate(() => window.captionWith({ source: new URL('model/', document.baseURI).href, worker: false }));
  assert.equal(absolute.trim(), CAPTION, `${label}: absolute model URL, worker: false`);
}

test('the packed package in a default Vite app (dev, build + preview), a webpack 5 bundle and an import-map page', { timeout: 1_200_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-apps-'));
  const closers = [];
  try {
    const { app, statics } = makeApp(tmp);
    const vite = await import('vite');
    await withBrowser({}, async ({ page, errors }) => {
      // (a) Vite, default config: dev server, then the production build served by `vite preview`.
      const dev = await vite.createServer({ root: app, logLevel: 'warn', server: { host: '127.0.0.1', port: 0 } });
      await dev.listen();
      closers.push(() => dev.close());
      await checkApp(page, dev.resolvedUrls.local[0], 'vite dev');
      await dev.close();
      closers.pop();
      await vite.build({ root: app, logLevel: 'warn' });
      const preview = await vite.preview({ root: app, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0 } });
      closers.push(() => new Promise((r) => preview.httpServer.close(r)));
      await checkApp(page, preview.resolvedUrls.local[0], 'vite build + preview');

      // (b) webpack 5.
      const out = await webpackBuild(app, statics);
      const wp = await startServer({ port: 0, quiet: true, model: path.join(out, 'model'), mounts: { '/': out } });
      closers.push(() => wp.close());
      await checkApp(page, wp.url, 'webpack');

      // (c) An import map, no bundler.
      const plain = await startServer({ port: 0, quiet: true, mounts: { '/': app } });
      closers.push(() => plain.close());
      await checkApp(page, `${plain.url}plain/`, 'import map');
      assert.deepEqual(errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
