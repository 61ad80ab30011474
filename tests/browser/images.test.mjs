// Real photos in the browser (issue 18): every file of the photo corpus
// (crates/pinhole-core/tests/fixtures/photos, made by tools/make_jpeg_corpus.py with Pillow:
// baseline/progressive JPEG in every subsampling, restart intervals, odd sizes, grayscale,
// CMYK, the 8 EXIF orientations as JPEG, PNG and WebP, XMP orientation, 16-bit and palette PNG,
// PNG/WebP/GIF with alpha, animated GIF/WebP, truncated files) decoded by the wasm build gives
// exactly the pixels Pillow gives (transformers' `convert_to_rgb(exif_transpose(open(f)))`),
// or fails where Pillow fails; the expected pixels are decoded by Chromium's own PNG decoder,
// not by the code under test. Then through the package API with the bundled f32 model: a
// scene stored a quarter turn off with EXIF orientation 6 is detected upright, with the same
// answer as transformers and the native CLI (crates/pinhole-cli/tests/orientation.rs).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, withBrowser, ROOT } from './lib.mjs';

const PHOTOS = path.join(ROOT, 'crates/pinhole-core/tests/fixtures/photos');
/** Files pinhole does not decode although Pillow does, with what the error must say. */
const NOT_SUPPORTED = { 'cjpeg/arith.jpg': 'arithmetic' };

test('photo corpus decodes as Pillow in wasm; EXIF orientation through the API', { timeout: 300_000 }, async () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(PHOTOS, 'manifest.json'), 'utf8'));
  const entries = manifest.files.map((e) => ({
    file: e.file,
    bytes: fs.readFileSync(path.join(PHOTOS, e.file)).toString('base64'),
    expected: e.expected ? fs.readFileSync(path.join(PHOTOS, e.expected)).toString('base64') : null,
    width: e.width ?? null,
    height: e.height ?? null,
  }));
  assert.ok(entries.length >= 70, `the photo corpus has ${entries.length} files`);
  const server = await serve({ model: path.join(ROOT, 'models/pinhole-shapes') });
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const results = await page.evaluate(async (entries) => {
        const glue = await import('/pkg/pinhole_web.js');
        await glue.default({ module_or_path: '/pkg/pinhole_web_bg.wasm' });
        const bin = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const out = [];
        for (const e of entries) {
          let got;
          try {
            const img = glue.decodeImage(bin(e.bytes), e.file);
            got = { width: img.width, height: img.height, rgb: img.rgb() };
            img.free();
          } catch (err) {
            out.push({ file: e.file, error: { code: err.code, message: err.message } });
            continue;
          }
          const r = { file: e.file, width: got.width, height: got.height };
          if (e.expected) {
            // Pillow's pixels, saved as an RGB PNG, decoded by the browser.
            const bmp = await createImageBitmap(new Blob([bin(e.expected)], { type: 'image/png' }), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
            const c = new OffscreenCanvas(bmp.width, bmp.height);
            const ctx = c.getContext('2d', { willReadFrequently: true });
            ctx.drawImage(bmp, 0, 0);
            const rgba = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
            let differ = 0;
            let max = 0;
            if (bmp.width * bmp.height * 3 !== got.rgb.length) differ = -1;
            else
              for (let i = 0, j = 0; i < got.rgb.length; i += 3, j += 4) {
                for (let k = 0; k < 3; k++) {
                  const d = Math.abs(got.rgb[i + k] - rgba[j + k]);
                  if (d) differ += 1;
                  max = Math.max(max, d);
                }
              }
            r.differ = differ;
            r.max = max;
          }
          out.push(r);
        }
        return out;
      }, entries);

      const failures = [];
      let identical = 0;
      for (const [i, r] of results.entries()) {
        const e = entries[i];
        const why = NOT_SUPPORTED[e.file];
        if (why) {
          if (!r.error || !r.error.message.includes(why)) failures.push(`${e.file}: expected an error saying '${why}', got ${JSON.stringify(r)}`);
        } else if (e.expected && r.error) {
          failures.push(`${e.file}: Pillow decodes it, wasm says ${r.error.code}: ${r.error.message}`);
        } else if (e.expected) {
          if (r.width !== e.width || r.height !== e.height) failures.push(`${e.file}: ${r.width}x${r.height} instead of ${e.width}x${e.height}`);
          else if (r.differ !== 0) failures.push(`${e.file}: ${r.differ} bytes differ from Pillow's, max ${r.max}`);
          else identical += 1;
        } else if (!r.error) {
          failures.push(`${e.file}: Pillow fails, wasm decodes it`);
        } else if (r.error.code !== 'bad-image' || !r.error.message.includes(e.file)) {
          failures.push(`${e.file}: the error is not a bad-image naming the file: ${JSON.stringify(r.error)}`);
        }
      }
      console.log(`${identical} of ${entries.filter((e) => e.expected && !NOT_SUPPORTED[e.file]).length} corpus files identical to Pillow in wasm`);
      assert.deepEqual(failures, [], failures.join('\n'));

      // EXIF orientation through the package API (worker; the file goes as a Blob to Rust).
      const expected = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/pinhole-shapes/examples/expected.json'), 'utf8'));
      const item = expected['scene_00001.png'].find((it) => it.prompt.startsWith('detect'));
      const rotated = fs.readFileSync(path.join(PHOTOS, 'scene_00001_orient6.png')).toString('base64');
      const answer = await page.evaluate(
        async ({ rotated, prompt }) => {
          const vlm = await Pinhole.load('/model/');
          const bytes = Uint8Array.from(atob(rotated), (c) => c.charCodeAt(0));
          try {
            return (await vlm.generate(new Blob([bytes], { type: 'image/png' }), { prompt, maxNewTokens: 48 })).text;
          } finally {
            vlm.dispose();
          }
        },
        { rotated, prompt: item.prompt },
      );
      assert.equal(answer.trim(), item.answer, 'the EXIF-rotated scene is not detected upright through the API');
      assert.deepEqual(b.errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
