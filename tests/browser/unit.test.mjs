// Browser-free checks of the demo's pieces: the static server (MIME types, ranges, no path
// escapes) and the detection-box parser of the overlay.

import test from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../../tools/serve.mjs';
import { parseBoxes, normaliseBox } from '../../www/boxes.js';
import { serve } from './lib.mjs';

test('serve.mjs: MIME types, HEAD, ranges, 404s, no escaping the mounts', async () => {
  const s = await serve();
  try {
    const get = (p, init) => fetch(new URL(p, s.url), init);
    let r = await get('/');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/html/);
    assert.match(await r.text(), /pinhole/);
    r = await get('/app.js');
    assert.match(r.headers.get('content-type'), /^text\/javascript/);
    r = await get('/model/config.json');
    assert.match(r.headers.get('content-type'), /^application\/json/);
    r = await get('/model/model.safetensors', { method: 'HEAD' });
    assert.equal(r.status, 200);
    const size = Number(r.headers.get('content-length'));
    assert.ok(size > 1000);
    r = await get('/model/model.safetensors', { headers: { Range: 'bytes=0-7' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-range'), `bytes 0-7/${size}`);
    assert.equal((await r.arrayBuffer()).byteLength, 8);
    r = await get('/fixtures/images/shapes_64.png');
    assert.equal(r.headers.get('content-type'), 'image/png');
    for (const p of ['/nope.html', '/model/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/js/..%2f..%2fetc%2fpasswd']) {
      r = await get(p);
      assert.equal(r.status, 404, p);
      await r.arrayBuffer();
    }
    r = await get('/', { method: 'POST' });
    assert.equal(r.status, 405);
  } finally {
    await s.close();
  }
});

test('serve.mjs: application/wasm for .wasm', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-serve-'));
  fs.writeFileSync(path.join(dir, 'a.wasm'), Buffer.from([0, 97, 115, 109, 1, 0, 0, 0]));
  const s = await startServer({ port: 0, quiet: true, mounts: { '/w/': dir } });
  try {
    const r = await fetch(new URL('/w/a.wasm', s.url));
    assert.equal(r.headers.get('content-type'), 'application/wasm');
    assert.equal((await r.arrayBuffer()).byteLength, 8);
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('boxes: <locYYYY> groups parse as y0,x0,y1,x1 over 1024, with labels', () => {
  const b = parseBoxes('<loc0256><loc0512><loc0768><loc1023> circle ; <loc0000><loc0000><loc0512><loc0256> square');
  assert.deepEqual(b, [
    { yMin: 0.25, xMin: 0.5, yMax: 0.75, xMax: 1023 / 1024, label: 'circle' },
    { yMin: 0, xMin: 0, yMax: 0.5, xMax: 0.25, label: 'square' },
  ]);
  assert.deepEqual(parseBoxes('a circle <loc0001><loc0002> and text'), []);
  assert.deepEqual(parseBoxes('<loc2000><loc0000><loc0001><loc0002> x'), []);
  // The package's boxes (pinhole-models' DetBox in JSON) normalise to the same form.
  assert.deepEqual(normaliseBox({ x_min: 0.5, y_min: 0.25, x_max: 1, y_max: 0.75, label: 'c' }), { yMin: 0.25, xMin: 0.5, yMax: 0.75, xMax: 1, label: 'c' });
  assert.deepEqual(normaliseBox({ xMin: 0.1, yMin: 0.2, xMax: 0.3, yMax: 0.4 }), { yMin: 0.2, xMin: 0.1, yMax: 0.4, xMax: 0.3, label: '' });
  assert.deepEqual(normaliseBox([256, 512, 768, 1024]), { yMin: 0.25, xMin: 0.5, yMax: 0.75, xMax: 1, label: '' });
  assert.equal(normaliseBox({ label: 'x' }), null);
});
