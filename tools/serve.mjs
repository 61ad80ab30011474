#!/usr/bin/env node
// A tiny dependency-free static server for the demo (`npm start`) and the browser tests.
//
// The URL layout mirrors a static deployment, so www/ needs no build step and the same relative
// paths work on any static host:
//   /            -> www/            (index.html, app.js, style.css, sw.js)
//   /js/...      -> js/             (the package's ESM sources)
//   /pkg/...     -> pkg/            (wasm-bindgen output, built by tools/build-web.sh)
//   /models/pinhole-shapes-q4/ -> the model in the package (`Pinhole.load()` with no URL)
//   /model/...   -> the default model folder (models/pinhole-shapes/, or the pg1-mqa test fixture
//                   until the bundled model exists; override with --model DIR)
// Extra mounts (used by tests) come from `startServer({ mounts: { '/tests/': 'dir' } })`.
// Two behaviours of real servers, for the tests: `gzip: true` compresses every response
// (Content-Encoding: gzip, chunked, no Content-Length, like `vite preview`), and `spa: true`
// answers every unknown path with www/index.html and status 200 (a single-page app's fallback,
// like Vite's default `appType: 'spa'`). `intercept(req, res)` sees each request first and
// handles it when it returns true (the tests cut downloads and go offline with it).
//
// Usage: node tools/serve.mjs [--port 8080] [--host 127.0.0.1] [--model DIR]
// Port 0 picks a free port. The first stdout line is always `pinhole demo: http://HOST:PORT/`.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.y4m': 'video/x-yuv4mpeg',
  '.safetensors': 'application/octet-stream',
  '.model': 'application/octet-stream',
};

/** The bundled model when it exists, else the tiny random test model (so a fresh clone works). */
export function defaultModelDir() {
  for (const rel of ['models/pinhole-shapes', 'tests/fixtures/pg1-mqa/model']) {
    const dir = path.join(ROOT, rel);
    if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
  }
  return path.join(ROOT, 'models/pinhole-shapes');
}

/** Maps a URL path to a file path inside one of the mounts, or null (also for `..` escapes). */
function resolvePath(mounts, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  // Longest prefix first, so '/model/' wins over '/'.
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  for (const prefix of prefixes) {
    if (!decoded.startsWith(prefix)) continue;
    const base = path.resolve(mounts[prefix]);
    const file = path.resolve(base, '.' + path.posix.normalize('/' + decoded.slice(prefix.length)));
    if (file !== base && !file.startsWith(base + path.sep)) return null;
    return file;
  }
  return null;
}

/**
 * Starts the server. Resolves to { url, port, close() } once it listens.
 * `quiet` suppresses the request log (the tests use it).
 */
export function startServer({ port = 8080, host = '127.0.0.1', model = defaultModelDir(), mounts = {}, quiet = false, gzip = false, spa = false, intercept = null } = {}) {
  const table = {
    '/': path.join(ROOT, 'www'),
    '/js/': path.join(ROOT, 'js'),
    '/pkg/': path.join(ROOT, 'pkg'),
    // The model inside the npm package (js/bundled.js finds it at ../models/ from js/).
    '/models/pinhole-shapes-q4/': path.join(ROOT, 'models/pinhole-shapes-q4'),
    '/model/': model,
    ...mounts,
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
      if (!quiet && status >= 400) console.log(`${status} ${req.method} ${url.pathname}`);
    };
    if (intercept && intercept(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    const fallback = path.join(table['/'], 'index.html');
    let file = resolvePath(table, url.pathname);
    if (!file && !spa) return send(404, 'not found\n');
    let stat;
    try {
      if (!file) throw new Error('no file');
      stat = fs.statSync(file);
      if (stat.isDirectory()) {
        if (!url.pathname.endsWith('/')) return send(301, '', { Location: url.pathname + '/' + url.search });
        file = path.join(file, 'index.html');
        stat = fs.statSync(file);
      }
    } catch {
      if (!spa) return send(404, 'not found\n');
      file = fallback;
      stat = fs.statSync(file);
    }
    const headers = {
      'Content-Type': MIME[path.extname(file).toLowerCase()] || 'application/octet-stream',
      // Always revalidate: the demo is developed against this server, and offline use goes through
      // the service worker's cache, not the HTTP cache.
      'Cache-Control': 'no-cache',
      'Accept-Ranges': 'bytes',
      'Last-Modified': stat.mtime.toUTCString(),
    };
    if (gzip && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
      // Compressed as it is read: no Content-Length, no ranges.
      delete headers['Accept-Ranges'];
      res.writeHead(200, { ...headers, 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding' });
      if (req.method === 'HEAD') return res.end();
      const z = zlib.createGzip();
      const stream = fs.createReadStream(file);
      stream.on('error', () => res.destroy());
      stream.pipe(z).pipe(res);
      return;
    }
    let start = 0;
    let end = stat.size - 1;
    let status = 200;
    const range = req.headers.range && /^bytes=(\d*)-(\d*)$/.exec(req.headers.range);
    if (range && (range[1] || range[2])) {
      if (range[1]) {
        start = Number(range[1]);
        if (range[2]) end = Math.min(Number(range[2]), stat.size - 1);
      } else {
        start = Math.max(0, stat.size - Number(range[2]));
      }
      if (start > end || start >= stat.size) {
        return send(416, '', { 'Content-Range': `bytes */${stat.size}` });
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${stat.size}`;
    }
    headers['Content-Length'] = String(stat.size === 0 ? 0 : end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || stat.size === 0) return res.end();
    const stream = fs.createReadStream(file, { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
  // Connections the browser keeps alive must not keep a test process running after close().
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      resolve({
        url: `http://${host}:${actual}/`,
        port: actual,
        model,
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const take = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') out.port = Number(take());
    else if (a === '--host') out.host = take();
    else if (a === '--model') out.model = path.resolve(take());
    else if (a === '--help' || a === '-h') out.help = true;
    else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (out.port !== undefined && !(Number.isInteger(out.port) && out.port >= 0 && out.port < 65536)) {
    throw new Error('--port must be an integer from 0 to 65535');
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`serve: ${e.message}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log('usage: node tools/serve.mjs [--port 8080] [--host 127.0.0.1] [--model DIR]');
    process.exit(0);
  }
  if (!opts.port && opts.port !== 0) opts.port = Number(process.env.PORT || 8080);
  const model = opts.model || defaultModelDir();
  if (!fs.existsSync(path.join(model, 'config.json'))) {
    console.error(`serve: no config.json in the model folder ${model}; pass --model DIR (a PaliGemma folder in Hugging Face layout)`);
    process.exit(2);
  }
  if (!fs.existsSync(path.join(ROOT, 'pkg'))) {
    console.error('serve: warning: pkg/ is missing; run `bash tools/build-web.sh` (npm start does) or the demo cannot load');
  }
  startServer({ ...opts, model }).then(
    (s) => {
      console.log(`pinhole demo: ${s.url}`);
      console.log(`model: ${path.relative(ROOT, model) || model} (served at ${s.url}model/)`);
      const stop = () => s.close().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    },
    (e) => {
      const hint = e.code === 'EADDRINUSE' ? ` (port in use: try --port 0 or PORT=8081 npm start)` : '';
      console.error(`serve: cannot listen on ${opts.host || '127.0.0.1'}:${opts.port}: ${e.message}${hint}`);
      process.exit(1);
    },
  );
}
