// The model and image sources of the package that a URL does not cover, in headless Chromium:
// a model from a File[] (e.g. drag and drop), from a FileList (<input type=file multiple>), from
// a FileSystemDirectoryHandle (here the origin-private file system, which hands out the same
// kind of handle as showDirectoryPicker), and an image given as a VideoFrame (what a camera's
// MediaStreamTrackProcessor yields). Each must give the caption transformers gave for the same
// scene (models/pinhole-shapes/examples/expected.json).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, withBrowser, ROOT } from './lib.mjs';

const BUNDLED = path.join(ROOT, 'models/pinhole-shapes');

test('model from File[], FileList and a directory handle; image as a VideoFrame', { timeout: 600_000 }, async () => {
  const expected = JSON.parse(fs.readFileSync(path.join(BUNDLED, 'examples/expected.json'), 'utf8'));
  const image = Object.keys(expected)[0];
  const caption = expected[image].find((t) => t.task === 'caption');
  // the model folder's top-level files, as a user would pick them
  const names = fs.readdirSync(BUNDLED).filter((n) => fs.statSync(path.join(BUNDLED, n)).isFile());
  const server = await serve({ model: BUNDLED });
  try {
    await withBrowser({}, async ({ page }) => {
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const got = await page.evaluate(
        async ({ names, image, prompt }) => {
          const blobs = await Promise.all(names.map(async (n) => (await fetch(`/model/${n}`)).blob()));
          const files = names.map((n, i) => new File([blobs[i]], n));
          const picture = await (await fetch(`/model/examples/${image}`)).blob();
          const out = {};
          const caption = async (source, img = picture) => {
            const vlm = await Pinhole.load(source);
            try {
              return (await vlm.generate(img, { prompt, maxNewTokens: 48 })).text.trim();
            } finally {
              vlm.dispose();
            }
          };

          out.fileArray = await caption(files);

          const dt = new DataTransfer();
          for (const f of files) dt.items.add(f);
          out.fileList = await caption(dt.files);

          const root = await navigator.storage.getDirectory();
          const dir = await root.getDirectoryHandle('pinhole-shapes', { create: true });
          for (let i = 0; i < names.length; i++) {
            const w = await (await dir.getFileHandle(names[i], { create: true })).createWritable();
            await w.write(blobs[i]);
            await w.close();
          }
          out.directoryHandle = await caption(dir);

          const bmp = await createImageBitmap(picture);
          const canvas = new OffscreenCanvas(bmp.width, bmp.height);
          canvas.getContext('2d').drawImage(bmp, 0, 0);
          const frame = new VideoFrame(canvas, { timestamp: 0 });
          try {
            out.videoFrame = await caption('/model/', frame);
          } finally {
            frame.close();
          }
          return out;
        },
        { names, image, prompt: caption.prompt },
      );
      for (const [source, text] of Object.entries(got)) {
        assert.equal(text, caption.answer, `${source}: caption of ${image}`);
      }
      assert.deepEqual(Object.keys(got), ['fileArray', 'fileList', 'directoryHandle', 'videoFrame']);
    });
  } finally {
    await server.close();
  }
});
