// pinhole demo service worker: makes the app work offline after the first visit.
//
// Strategy: network first, cache as fallback, for the app's own files (page, scripts, styles, the
// package's JS and wasm). Network first keeps a developer's edits visible at once; the cache is
// what answers when the network is off. Model files are NOT stored here: the package keeps them
// in its own model cache (Cache Storage), verified, and loads from there without requests, so
// storing them twice would only double the disk use.

const CACHE = 'pinhole-app-v1';
// The shell is cached at install time, so the first visit is enough even before this worker
// controls the page. Files that do not exist (yet) are skipped, not fatal.
const SHELL = [
  './',
  'index.html',
  'app.js',
  'boxes.js',
  'style.css',
  'examples/three-shapes.png',
  'examples/two-shapes.png',
  'examples/circle-squares.png',
  'js/index.js',
  'js/worker.js',
  'js/engine.js',
  'js/errors.js',
  'js/cache.js',
  'js/dispatch.js',
  'js/bundled.js',
  'pkg/pinhole_web.js',
  'pkg/pinhole_web_bg.wasm',
];

const scope = () => new URL(self.registration.scope);

function isModelRequest(url) {
  return url.pathname.startsWith(scope().pathname + 'model/') || url.pathname.endsWith('.safetensors');
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await Promise.all(
        SHELL.map(async (path) => {
          try {
            const res = await fetch(new URL(path, scope()), { cache: 'no-cache' });
            if (res.ok) await cache.put(new URL(path, scope()), res);
          } catch {
            /* offline during install or not built: the runtime cache below fills it later */
          }
        }),
      );
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith('pinhole-app-') && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== location.origin || isModelRequest(url) || req.headers.has('range')) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const res = await fetch(req);
        if (res.ok && res.status === 200) event.waitUntil(cache.put(req, res.clone()));
        return res;
      } catch (err) {
        const hit = (await cache.match(req, { ignoreSearch: true })) || (req.mode === 'navigate' ? await cache.match(new URL('./', scope())) : null);
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
