// Camera: Chromium's fake camera plays a Y4M made from a fixture PNG; the demo captions live
// frames (more than one, each taken when the previous caption finished), pause stops it, resume
// starts it again.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, withBrowser, waitForState, errorText, FIXTURES } from './lib.mjs';
import { pngToY4m } from './y4m.mjs';

const frames = (page) => page.evaluate(() => Number(document.getElementById('state').dataset.frames || 0));

test('demo camera: the fake camera yields captions; pause and resume', { timeout: 300_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-cam-'));
  const y4m = path.join(dir, 'shapes.y4m');
  pngToY4m(path.join(FIXTURES, 'images/shapes_64.png'), y4m, { scale: 4, frames: 10 });
  const server = await serve();
  try {
    await withBrowser(
      { args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`] },
      async (b) => {
        const { page } = b;
        await page.goto(server.url);
        assert.equal(await waitForState(page, ['ready', 'error'], 120_000), 'ready', await errorText(page));
        await page.fill('#max-tokens', '4');
        await page.click('#camera');
        // getUserMedia is asynchronous: the button flips once the stream runs.
        await page.waitForSelector('#camera[aria-pressed=true]', { timeout: 30_000 });
        // Two finished captions prove the loop goes on frame after frame.
        await page.waitForFunction(() => Number(document.getElementById('state').dataset.frames || 0) >= 2, null, { timeout: 180_000, polling: 200 });
        assert.equal(await errorText(page), '');
        const caption = await page.textContent('#output');
        assert.ok(caption.trim().length > 0, 'camera caption is empty');
        assert.deepEqual(await page.evaluate(() => {
          const v = document.getElementById('video');
          return [v.hidden, v.videoWidth, v.videoHeight];
        }), [false, 256, 256]);

        // Pause: at most the caption already running finishes, then the count stays put.
        await page.click('#pause');
        assert.equal(await page.getAttribute('#pause', 'aria-pressed'), 'true');
        await waitForState(page, ['done', 'stopped', 'error'], 120_000);
        const paused = await frames(page);
        await page.waitForTimeout(1500);
        assert.equal(await frames(page), paused, 'captioning went on while paused');
        // Resume: captions continue.
        await page.click('#pause');
        await page.waitForFunction((n) => Number(document.getElementById('state').dataset.frames || 0) > n, paused, { timeout: 120_000, polling: 200 });
        await page.click('#camera');
        assert.equal(await page.getAttribute('#camera', 'aria-pressed'), 'false');
        assert.deepEqual(b.errors.map(String), []);
      },
    );
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
