// Real models through the package in headless Chromium: the bundled default model answers two
// of its example scenes exactly as transformers did (models/pinhole-shapes/examples/expected.json,
// the same answers the native CLI test checks), and the BLIP-2 + Phi fixture generates
// transformers' greedy ids (tests/fixtures/blip2-phi/expected.json).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, withBrowser, ROOT, FIXTURES } from './lib.mjs';

const BUNDLED = path.join(ROOT, 'models/pinhole-shapes');

test('bundled model: example scenes answered as transformers does', { timeout: 600_000 }, async () => {
  const expected = JSON.parse(fs.readFileSync(path.join(BUNDLED, 'examples/expected.json'), 'utf8'));
  // one scene with a box to detect and one more: caption, count and detect on each
  const names = Object.keys(expected);
  const withBox = names.find((n) => expected[n].some((t) => t.task === 'detect' && t.answer.includes('<loc')));
  const picked = [withBox, names.find((n) => n !== withBox)];
  const server = await serve({ model: BUNDLED });
  try {
    await withBrowser({}, async ({ page }) => {
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const jobs = picked.flatMap((n) => expected[n].map((t) => ({ image: n, prompt: t.prompt, answer: t.answer })));
      const got = await page.evaluate(async (jobs) => {
        const vlm = await Pinhole.load('/model/');
        const out = [];
        for (const j of jobs) {
          const blob = await (await fetch(`/model/examples/${j.image}`)).blob();
          const r = await vlm.generate(blob, { prompt: j.prompt, maxNewTokens: 48 });
          out.push({ text: r.text, boxes: r.boxes });
        }
        vlm.dispose();
        return out;
      }, jobs);
      jobs.forEach((j, i) => {
        assert.equal(got[i].text.trim(), j.answer, `${j.prompt} on ${j.image}`);
        if (j.answer.includes('<loc')) assert.equal(got[i].boxes.length, j.answer.split(';').length, 'boxes parsed');
      });
    });
  } finally {
    await server.close();
  }
});

test('BLIP-2 + Phi fixture: greedy ids equal transformers in the browser', { timeout: 600_000 }, async () => {
  const exp = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'blip2-phi/expected.json'), 'utf8'));
  const server = await serve();
  try {
    await withBrowser({}, async ({ page }) => {
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const ids = await page.evaluate(async ({ image, prompt, n }) => {
        const vlm = await Pinhole.load('/fixtures/blip2-phi/model/');
        const blob = await (await fetch(`/fixtures/images/${image}`)).blob();
        const r = await vlm.generate(blob, { prompt, maxNewTokens: n });
        vlm.dispose();
        return r.tokenIds;
      }, { image: exp.image, prompt: exp.prompt, n: exp.max_new_tokens });
      assert.deepEqual(ids.slice(0, exp.generated_ids.length), exp.generated_ids);
    });
  } finally {
    await server.close();
  }
});
