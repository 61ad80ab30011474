// The npm package as published (no browser needed): the JavaScript type-checks (`// @ts-check`
// on js/*.js) and the hand-written js/index.d.ts matches the implementation
// (tests/types/check.ts); `npm pack` and `npm publish --dry-run` list exactly the expected files;
// the published wasm has no `name` section and no kernel test cases.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from './lib.mjs';

const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

/** What `npm pack` must contain, and nothing else. */
const EXPECTED_FILES = [
  'LICENSE-APACHE',
  'LICENSE-MIT',
  'README.md',
  'js/bundled.js',
  'js/cache.js',
  'js/dispatch.js',
  'js/engine.js',
  'js/errors.js',
  'js/index.d.ts',
  'js/index.js',
  'js/types.d.ts',
  'js/worker.js',
  'models/pinhole-shapes-q4/config.json',
  'models/pinhole-shapes-q4/generation_config.json',
  'models/pinhole-shapes-q4/model.safetensors',
  'models/pinhole-shapes-q4/preprocessor_config.json',
  'models/pinhole-shapes-q4/tokenizer.json',
  'package.json',
  'pkg/pinhole_web.d.ts',
  'pkg/pinhole_web.js',
  'pkg/pinhole_web_bg.wasm',
  'pkg/pinhole_web_bg.wasm.d.ts',
];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Names of the custom sections of a wasm module. */
function customSections(bytes) {
  const names = [];
  let o = 8;
  const leb = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[o++];
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) return v;
    }
  };
  while (o < bytes.length) {
    const id = bytes[o++];
    const size = leb();
    const end = o + size;
    if (id === 0) {
      const n = leb();
      names.push(Buffer.from(bytes.subarray(o, o + n)).toString('utf8'));
    }
    o = end;
  }
  return names;
}

test('js/ type-checks and js/index.d.ts matches the implementation', () => {
  run(process.execPath, [TSC, '-p', 'tsconfig.json']);
  // The declarations TypeScript infers from js/index.js, next to the shared types, then the check.
  const impl = path.join(ROOT, 'tests/types/impl');
  fs.rmSync(impl, { recursive: true, force: true });
  run(process.execPath, [
    TSC,
    '--ignoreConfig',
    '--allowJs',
    '--strict',
    'false',
    '--declaration',
    '--emitDeclarationOnly',
    '--target',
    'es2022',
    '--module',
    'esnext',
    '--moduleResolution',
    'bundler',
    '--skipLibCheck',
    '--lib',
    'es2023,dom,dom.iterable',
    '--outDir',
    impl,
    'js/index.js',
  ]);
  fs.copyFileSync(path.join(ROOT, 'js/types.d.ts'), path.join(impl, 'types.d.ts'));
  run(process.execPath, [TSC, '-p', 'tests/types/tsconfig.json']);
});

test('npm pack and npm publish --dry-run: the expected files, a lean wasm', () => {
  const pack = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']));
  const files = pack[0].files.map((f) => f.path).sort();
  assert.deepEqual(files, EXPECTED_FILES, 'npm pack file list');
  const pj = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pj.private, undefined, 'package.json must not be private');
  for (const k of ['license', 'repository', 'homepage', 'bugs']) assert.ok(pj[k], `package.json has no ${k}`);

  const publish = JSON.parse(run('npm', ['publish', '--dry-run', '--json', '--ignore-scripts']));
  const published = (publish.pinhole ?? publish).files.map((f) => f.path).sort();
  assert.deepEqual(published, EXPECTED_FILES, 'npm publish --dry-run file list');

  const wasm = fs.readFileSync(path.join(ROOT, 'pkg/pinhole_web_bg.wasm'));
  const sections = customSections(wasm);
  assert.ok(!sections.includes('name'), `the published wasm has a name section: ${sections}`);
  const glue = fs.readFileSync(path.join(ROOT, 'pkg/pinhole_web.js'), 'utf8');
  assert.ok(!glue.includes('runKernelTests'), 'the published wasm exports the kernel test cases');
  const gz = pack[0].size;
  console.log(`npm pack: ${files.length} files, ${pack[0].unpackedSize} bytes unpacked, ${gz} bytes packed; wasm ${wasm.length} bytes`);
});
