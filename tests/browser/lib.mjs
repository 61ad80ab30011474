// Shared helpers of the browser tests: the static server, a fresh headless Chromium, the native
// CLI's output for comparison, and small image tools. No browser is ever downloaded: Debian's
// /usr/bin/chromium is driven through playwright-core (tools/test.sh installs it when missing).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { startServer, ROOT, defaultModelDir } from '../../tools/serve.mjs';

export { ROOT, defaultModelDir };
export const CHROMIUM = process.env.PINHOLE_CHROMIUM || '/usr/bin/chromium';
export const FIXTURES = path.join(ROOT, 'tests/fixtures');
/** The model every browser test loads: small enough for SwiftShader, and CLI-checked. */
export const TEST_MODEL = process.env.PINHOLE_TEST_MODEL ? path.resolve(process.env.PINHOLE_TEST_MODEL) : path.join(FIXTURES, 'pg1-mqa/model');

/** The flags the issue names; nothing here reaches the network. */
export const BASE_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * Starts tools/serve.mjs on a free port, with the test pages and fixtures mounted; `pkg` serves
 * another wasm build as /pkg/ (the kernel test build).
 */
export function serve({ model = TEST_MODEL, pkg = null } = {}) {
  return startServer({
    port: 0,
    quiet: true,
    model,
    mounts: {
      '/tests/': path.join(ROOT, 'tests/browser/pages'),
      '/fixtures/': FIXTURES,
      ...(pkg ? { '/pkg/': pkg } : {}),
    },
  });
}

/**
 * Launches Chromium with a fresh --user-data-dir. Returns { context, page, errors, logs, close }.
 * `errors` collects uncaught exceptions and unhandled rejections of every page (`pageerror`);
 * `logs` the console, printed by `dumpLogs` when a test fails.
 */
export async function launch({ webgpu = true, args = [] } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (tools/test.sh does) or set PINHOLE_CHROMIUM`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_FLAGS, ...(webgpu ? ['--enable-unsafe-webgpu'] : []), ...args],
    viewport: { width: 1100, height: 900 },
  });
  const errors = [];
  const logs = [];
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push(e));
    page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  };
  context.on('page', watch);
  const page = context.pages()[0] || (await context.newPage());
  watch(page);
  // A dedicated worker's console and errors go to the page's console in Chromium; service
  // worker messages are collected too.
  context.on('serviceworker', (w) => w.on('console', (m) => logs.push(`[sw ${m.type()}] ${m.text()}`)));
  return {
    context,
    page,
    errors,
    logs,
    userDataDir,
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Prints the collected browser console (call when a test fails: SwiftShader errors land there). */
export function dumpLogs(b, label = 'browser console') {
  if (!b) return;
  const tail = b.logs.slice(-60);
  if (tail.length) console.log(`--- ${label} (last ${tail.length}) ---\n${tail.join('\n')}`);
  for (const e of b.errors) console.log(`--- pageerror: ${e.stack || e}`);
}

/** Runs `fn(browser)` and always closes the browser; dumps the console when `fn` throws. */
export async function withBrowser(opts, fn) {
  const b = await launch(opts);
  try {
    return await fn(b);
  } catch (e) {
    dumpLogs(b);
    throw e;
  } finally {
    await b.close();
  }
}

/**
 * The native CLI's result for the same model, image and prompt (`pinhole generate --json`).
 * Uses PINHOLE_CLI when set (a built binary), else `cargo run` (CI has built it by then).
 */
export function nativeGenerate({ model = TEST_MODEL, image, prompt = 'caption en', maxNewTokens = 32 }) {
  const args = ['generate', '--model', model, '--image', image, '--prompt', prompt, '--max-new-tokens', String(maxNewTokens), '--json'];
  const cmd = process.env.PINHOLE_CLI ? [process.env.PINHOLE_CLI, args] : ['cargo', ['run', '-q', '-p', 'pinhole-cli', '--', ...args]];
  const r = spawnSync(cmd[0], cmd[1], { cwd: ROOT, encoding: 'utf8', env: { XDG_RUNTIME_DIR: '/tmp', ...process.env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`native CLI failed (${cmd[0]} ${cmd[1].join(' ')}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

/** Waits until the demo's state element says one of `states`; returns the state. */
export async function waitForState(page, states, timeout) {
  const handle = await page.waitForFunction(
    (want) => {
      const s = document.getElementById('state')?.dataset.state;
      return want.includes(s) ? s : false;
    },
    states,
    { timeout, polling: 100 },
  );
  return handle.jsonValue();
}

/** The demo's visible error text ('' when none). */
export async function errorText(page) {
  return page.evaluate(() => {
    const e = document.getElementById('error');
    return e && !e.hidden ? e.textContent : '';
  });
}
