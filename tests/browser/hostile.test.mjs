// Hostile model files in the browser (issue 17): the committed reproducers of
// crates/pinhole-fuzz/corpus (configs over pinhole's limits, tokenizer.json files that panicked
// inside the tokenizers crate) and a valid-JSON tokenizer.json that still panics inside
// tokenizers 0.22 (`.expect("Precompiled")`), each dropped into the test model's files and
// loaded with Pinhole.load(File[]), in the worker and on the page (`worker: false`). Each load
// must reject with a PinholeError 'bad-model' naming the file (a panic inside the wasm instance
// would be 'internal' and cost the instance). Nothing is bricked: a model loaded before keeps captioning, and the next load of
// the good files captions exactly as before.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve, withBrowser, ROOT } from './lib.mjs';

const CORPUS = path.join(ROOT, 'crates/pinhole-fuzz/corpus');
const PRECOMPILED_PANIC =
  '{"normalizer": {"type": "Precompiled", "precompiled_charsmap": 5}, "model": {"type": "WordLevel", "vocab": {}, "unk_token": "x"}}';

function corpus(dir) {
  return fs
    .readdirSync(path.join(CORPUS, dir))
    .sort()
    .map((f) => ({ name: `${dir}/${f}`, text: fs.readFileSync(path.join(CORPUS, dir, f), 'latin1') }));
}

test('hostile model files: typed errors, and the engine keeps working (worker and page)', { timeout: 600_000 }, async () => {
  // `fresh`: also load the good files again after this case (the tokenizer cases, where a
  // panic could leave a broken instance behind); the configs fail in the parser, so only the
  // model loaded before is checked after them (loads are slow under SwiftShader).
  const tokenizers = [
    ...corpus('tokenizer').map((c) => ({ ...c, file: 'tokenizer.json', want: ['bad-model'], fresh: true })),
    // Valid JSON that tokenizers 0.22 panics on: pinhole's pre-check reads the Precompiled
    // normalizer first, so it is a bad-model too instead of aborting the wasm instance.
    { name: 'precompiled-panic', text: PRECOMPILED_PANIC, file: 'tokenizer.json', want: ['bad-model'], fresh: true },
  ];
  const configs = corpus('config').map((c) => ({ ...c, file: 'config.json', want: ['bad-model'], fresh: false }));
  const server = await serve();
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      for (const worker of [true, false]) {
        // The page's own instance (worker: false) only meets the tokenizer cases.
        const cases = worker ? [...configs, ...tokenizers] : tokenizers;
        const r = await page.evaluate(
          async ({ cases, worker }) => {
            const names = ['config.json', 'tokenizer.json', 'preprocessor_config.json', 'generation_config.json', 'model.safetensors'];
            const good = {};
            for (const n of names) good[n] = new File([await (await fetch(`/model/${n}`)).blob()], n);
            const files = (over = {}) => names.map((n) => over[n] ?? good[n]);
            const blob = await (await fetch('/fixtures/images/shapes_64.png')).blob();
            const opts = { prompt: 'caption en', maxNewTokens: 4 };
            const before = await Pinhole.load(files(), { worker });
            const want = (await before.generate(blob, opts)).tokenIds;
            const out = { want, cases: [] };
            for (const c of cases) {
              const bytes = Uint8Array.from(c.text, (ch) => ch.charCodeAt(0));
              let got;
              try {
                const m = await Pinhole.load(files({ [c.file]: new File([bytes], c.file) }), { worker });
                m.dispose();
                got = { code: 'resolved' };
              } catch (e) {
                got = e instanceof PinholeError ? { code: e.code, message: e.message } : { code: `not a PinholeError: ${e}` };
              }
              // The model loaded before is untouched, and a new load of the good files works.
              const still = (await before.generate(blob, opts)).tokenIds;
              let again = want;
              if (c.fresh) {
                const fresh = await Pinhole.load(files(), { worker });
                again = (await fresh.generate(blob, opts)).tokenIds;
                fresh.dispose();
              }
              out.cases.push({ name: c.name, ...got, still, again });
            }
            before.dispose();
            return out;
          },
          { cases, worker },
        );
        const mode = worker ? 'worker' : 'page';
        for (const [i, c] of r.cases.entries()) {
          const want = cases[i].want;
          assert.ok(want.includes(c.code), `${mode} ${c.name}: ${c.code} ${c.message ?? ''} (want ${want.join(' or ')})`);
          if (c.code === 'bad-model') assert.ok(c.message.includes(cases[i].file), `${mode} ${c.name}: the error names ${cases[i].file}: ${c.message}`);
          assert.deepEqual(c.still, r.want, `${mode} ${c.name}: the model loaded before stopped working`);
          assert.deepEqual(c.again, r.want, `${mode} ${c.name}: the next load does not caption as before`);
        }
        console.log(`${mode}: ${r.cases.map((c) => `${c.name} -> ${c.code}`).join('; ')}`);
      }
      assert.deepEqual(b.errors.map(String), [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
