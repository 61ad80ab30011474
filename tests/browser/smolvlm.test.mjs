// SmolVLM / Idefics3 through the npm package in headless Chromium: the fixtures made by
// tools/make_smolvlm_fixtures.py (tests/fixtures/{smolvlm,smolvlm-nosplit,idefics3}) generate
// transformers' greedy ids, with the image split into tiles by the Rust processor in wasm and the
// prompt rendered from each folder's chat template (chat_template.jinja, chat_template.json).
// 1. README's SmolVLM example, run verbatim in a page (a question, and a conversation in the
//    `messages` form), from a model URL with the worker.
// 2. The other cases: a text-first message (3x1 tiles), the unsplit model from File[] on the
//    calling thread, Idefics3 (4x4 tiles, double BOS) with the image as ImageData (RGBA pixels
//    instead of the PNG's bytes), and the errors of the messages form.
// 3. The demo page with a SmolVLM folder as its model: chat presets, the question sent as
//    `messages`, the streamed text equal to transformers'.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../tools/serve.mjs';
import { serve, withBrowser, waitForState, errorText, ROOT, FIXTURES } from './lib.mjs';

const expected = (variant) => JSON.parse(fs.readFileSync(path.join(FIXTURES, variant, 'expected.json'), 'utf8')).cases;

/** README's SmolVLM example: the ```js block after the `smolvlm.js` marker. */
function readmeExample() {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- smolvlm\.js:[^\n]*-->\n```js\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'README.md has no smolvlm.js example');
  return m[1];
}

test("README's SmolVLM example: a question and a conversation give transformers' ids", { timeout: 600_000 }, async () => {
  const cases = expected('smolvlm');
  const code = readmeExample();
  assert.match(code, /from 'pinhole'/);
  // The example as a page's module; `pinhole` is the package (an import map, as an app without
  // a bundler has). Its relative URLs resolve under /readme/, where the repository's
  // tests/fixtures are mounted.
  // Imports stay at the module's top level; the rest runs inside a try so a failure is reported.
  const lines = code.split('\n');
  const imports = lines.filter((l) => l.startsWith('import ')).join('\n');
  const body = lines.filter((l) => !l.startsWith('import ')).join('\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-readme-'));
  fs.writeFileSync(
    path.join(dir, 'index.html'),
    `<!doctype html><meta charset="utf-8"><script type="importmap">{"imports": {"pinhole": "/js/index.js"}}</script>
<script>window.addEventListener('error', (e) => { window.readme = { error: String(e.message) }; });</script>
<script type="module">
${imports}
try {
${body}
window.readme = { text, ids: answer.tokenIds, reply: reply.tokenIds, stopped: reply.stoppedOnEos };
} catch (e) { window.readme = { error: String(e?.stack ?? e) }; }
</script>`,
  );
  const server = await startServer({ port: 0, quiet: true, mounts: { '/readme/': dir, '/readme/tests/fixtures/': FIXTURES } });
  try {
    await withBrowser({}, async ({ page }) => {
      await page.goto(`${server.url}readme/`);
      const got = await (await page.waitForFunction(() => window.readme, null, { timeout: 540_000, polling: 200 })).jsonValue();
      assert.equal(got.error, undefined, got.error);
      assert.deepEqual(got.ids, cases.describe.generated_ids, 'prompt form = transformers on the describe case');
      assert.equal(got.text, cases.describe.generated_text, 'text = tokenizer.decode(ids, skip_special_tokens=True)');
      assert.deepEqual(got.reply, cases.multiturn.generated_ids, 'messages form = transformers on the multiturn case');
      assert.equal(got.stopped, cases.multiturn.stopped_on_eos);
    });
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SmolVLM cases: text-first message, File[] without the worker, Idefics3 from ImageData, a stop on <end_of_utterance>, errors', { timeout: 600_000 }, async () => {
  const smol = expected('smolvlm');
  const eos = expected('smolvlm-eos');
  const nosplit = expected('smolvlm-nosplit');
  const idefics = expected('idefics3');
  const files = fs.readdirSync(path.join(FIXTURES, 'smolvlm-nosplit/model'));
  const server = await serve();
  try {
    await withBrowser({}, async ({ page }) => {
      await page.goto(`${server.url}tests/api.html`);
      await page.waitForFunction(() => window.apiReady === true, null, { timeout: 30_000 });
      const got = await page.evaluate(
        async ({ smol, nosplit, idefics, eos, files }) => {
          const blob = async (name) => (await fetch(`/fixtures/images/${name}`)).blob();
          const out = {};
          const errorOf = async (p) => p.then(() => 'no error', (e) => `${e.code}: ${e.message}`);

          const vlm = await Pinhole.load('/fixtures/smolvlm/model/');
          out.info = vlm.info;
          const tall = await vlm.generate(await blob(smol.tall.image), { messages: smol.tall.messages, maxNewTokens: smol.tall.max_new_tokens });
          out.tall = tall.tokenIds;
          out.tallPromptTokens = tall.promptTokens;
          // The same request as a raw prompt: the template's text given as it is.
          out.raw = (await vlm.generate(await blob(smol.tall.image), { prompt: smol.tall.prompt_text, rawPrompt: true, maxNewTokens: 4 })).tokenIds;
          const img = await blob(smol.describe.image);
          out.errors = {
            both: await errorOf(vlm.generate(img, { prompt: 'x', messages: smol.describe.messages })),
            noImage: await errorOf(vlm.generate(img, { messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] })),
            twoImages: await errorOf(vlm.generate(img, { messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'image' }] }] })),
            notList: await errorOf(vlm.generate(img, { messages: 'Describe this image.' })),
            rawWithoutImage: await errorOf(vlm.generate(img, { prompt: 'Describe this image.', rawPrompt: true })),
          };
          vlm.dispose();

          // The unsplit model (template in chat_template.json) from local files, on this thread.
          const picked = await Promise.all(files.map(async (n) => new File([await (await fetch(`/fixtures/smolvlm-nosplit/model/${n}`)).blob()], n)));
          const ns = await Pinhole.load(picked, { worker: false });
          out.nosplit = (await ns.generate(await blob(nosplit.multiturn.image), { messages: nosplit.multiturn.messages, maxNewTokens: nosplit.multiturn.max_new_tokens })).tokenIds;
          ns.dispose();

          // Idefics3 with the picture as RGBA pixels (ImageData), which the engine tiles itself.
          const id = await Pinhole.load('/fixtures/idefics3/model/');
          const bmp = await createImageBitmap(await blob(idefics.describe.image), { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
          const canvas = new OffscreenCanvas(bmp.width, bmp.height);
          const ctx = canvas.getContext('2d');
          ctx.drawImage(bmp, 0, 0);
          const pixels = ctx.getImageData(0, 0, bmp.width, bmp.height);
          out.idefics = (await id.generate(pixels, { messages: idefics.describe.messages, maxNewTokens: idefics.describe.max_new_tokens })).tokenIds;
          id.dispose();

          // A model whose greedy path ends on <end_of_utterance> long before maxNewTokens: the
          // engine stops there as transformers' generate() does (generation_config.json lists it).
          const em = await Pinhole.load('/fixtures/smolvlm-eos/model/');
          const stop = await em.generate(await blob(eos.describe.image), { messages: eos.describe.messages, maxNewTokens: eos.describe.max_new_tokens });
          out.eos = { ids: stop.tokenIds, stopped: stop.stoppedOnEos, text: stop.text };
          const streamed = [];
          for await (const piece of em.stream(await blob(eos.multiturn.image), { messages: eos.multiturn.messages, maxNewTokens: eos.multiturn.max_new_tokens })) {
            streamed.push(piece);
          }
          out.eosStreamed = streamed.length;
          em.dispose();

          // A PaliGemma model refuses the messages form.
          const pg = await Pinhole.load('/model/');
          out.errors.notChat = await errorOf(pg.generate(img, { messages: smol.describe.messages }));
          pg.dispose();
          return out;
        },
        { smol, nosplit, idefics, eos, files },
      );
      assert.equal(got.info.modelType, 'smolvlm');
      assert.equal(got.info.chat, true);
      assert.equal(got.info.chatTemplate, true);
      assert.deepEqual(got.tall, smol.tall.generated_ids, 'smolvlm/tall (3x1 tiles, text before the image)');
      assert.equal(got.tallPromptTokens, smol.tall.input_ids.length);
      assert.deepEqual(got.raw, smol.tall.generated_ids.slice(0, 4), 'rawPrompt with the rendered template');
      assert.deepEqual(got.nosplit, nosplit.multiturn.generated_ids, 'smolvlm-nosplit/multiturn from File[], worker: false');
      assert.deepEqual(got.idefics, idefics.describe.generated_ids, 'idefics3/describe from ImageData');
      assert.ok(eos.describe.stopped_on_eos && eos.describe.generated_ids.length < eos.describe.max_new_tokens);
      assert.deepEqual(got.eos.ids, eos.describe.generated_ids, 'smolvlm-eos/describe: the ids up to and with <end_of_utterance>');
      assert.equal(got.eos.stopped, true, 'stoppedOnEos');
      assert.equal(got.eos.text, eos.describe.generated_text, 'text without the stop token');
      assert.ok(got.eosStreamed >= 1 && got.eosStreamed <= eos.multiturn.generated_ids.length, `stream() ended at the stop (${got.eosStreamed} pieces)`);
      assert.match(got.errors.both, /^bad-request: .*either prompt or messages/);
      assert.match(got.errors.noImage, /^bad-request: .*0 image parts/);
      assert.match(got.errors.twoImages, /^bad-request: .*2 image parts/);
      assert.match(got.errors.notList, /^bad-request: .*not a non-empty array/);
      assert.match(got.errors.rawWithoutImage, /^bad-request: .*0 `<image>` placeholders/);
      assert.match(got.errors.notChat, /^bad-request: messages are for chat models/);
    });
  } finally {
    await server.close();
  }
});

test('demo: a SmolVLM folder gets chat presets and answers as transformers', { timeout: 400_000 }, async () => {
  const e = expected('smolvlm').describe;
  const server = await serve({ model: path.join(FIXTURES, 'smolvlm/model') });
  try {
    await withBrowser({}, async (b) => {
      const { page } = b;
      await page.goto(server.url);
      const ready = await waitForState(page, ['ready', 'error'], 120_000);
      assert.equal(ready, 'ready', `loading the SmolVLM folder failed: ${await errorText(page)}`);
      // Chat presets replace PaliGemma's task prefixes, and the prompt box follows.
      assert.equal(await page.inputValue('#prompt'), 'Describe this image.');
      assert.equal(await page.textContent('.preset >> nth=0'), 'Describe');
      await page.fill('#max-tokens', String(e.max_new_tokens));
      await page.setInputFiles('#file', path.join(FIXTURES, 'images', e.image));
      assert.equal(await waitForState(page, ['done', 'error'], 240_000), 'done', await errorText(page));
      assert.equal(await page.textContent('#output'), e.generated_text, 'the demo answer differs from transformers');
      assert.deepEqual(b.errors, [], 'uncaught page errors');
    });
  } finally {
    await server.close();
  }
});
