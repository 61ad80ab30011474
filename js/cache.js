// Model files: where they come from (a URL, local files, a directory handle) and the Cache
// Storage copy that makes the next load work offline without a single request.
//
// Every source answers the same three questions for a file name: is it there, how big is
// it, and a ReadableStream of its bytes. Files from the network are written to Cache Storage
// while they stream, but an entry is committed only after the engine has checked the file
// (the size against Content-Length and the safetensors header; configs parsed), so a broken
// download never lands in the cache. After a complete load a small manifest lists the files
// of the folder; with it, a later load reads everything from the cache and makes no request.

import { PinholeError, abortError } from './errors.js';

export const CACHE_NAME = 'pinhole-models-v1';
const MANIFEST = '.pinhole-manifest.json';

function hasCaches() {
  return typeof caches !== 'undefined' && typeof caches.open === 'function';
}

async function openCache() {
  if (!hasCaches()) return null;
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // opaque origins, private modes: load without caching
  }
}

/** Normalises a model folder URL: absolute, ends with '/'. */
export function folderUrl(source) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  let u = new URL(String(source), base).href;
  u = u.replace(/[?#].*$/, '');
  return u.endsWith('/') ? u : u + '/';
}

function contentLength(res) {
  // A compressed response's Content-Length counts compressed bytes; then the size is unknown
  // here and the engine checks the safetensors header's extent instead.
  if (res.headers.get('content-encoding')) return undefined;
  const n = Number(res.headers.get('content-length'));
  return Number.isFinite(n) && res.headers.has('content-length') ? n : undefined;
}

/** A stream of one chunk. */
function bytesStream(bytes) {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}

/**
 * A model folder at a URL, with the cache in front.
 * open(name) resolves to null when the file does not exist (HTTP 404).
 */
export class UrlSource {
  constructor(url, { signal } = {}) {
    this.base = folderUrl(url);
    this.place = this.base;
    this.signal = signal;
    this.cache = null;
    this.manifest = null; // {files: {name: size}} when the folder is fully cached
    this.pending = new Map(); // name -> {commit(), discard()}
    this.seen = {}; // name -> size, for the manifest
  }

  async init() {
    this.cache = await openCache();
    if (!this.cache) return;
    const m = await this.cache.match(this.base + MANIFEST);
    if (!m) return;
    try {
      const man = await m.json();
      // Every listed file must still be cached (the user may have deleted some).
      for (const name of Object.keys(man.files ?? {})) {
        if (man.files[name] === null) continue;
        if (!(await this.cache.match(this.base + name))) return;
      }
      this.manifest = man;
    } catch {
      /* a bad manifest: ignore it and revalidate from the network */
    }
  }

  /** @returns {Promise<null | {size: number|undefined, stream: ReadableStream<Uint8Array>, fromCache: boolean}>} */
  async open(name) {
    if (this.signal?.aborted) throw abortError();
    const url = this.base + name;
    if (this.manifest) {
      if (!(name in this.manifest.files) || this.manifest.files[name] === null) return null;
    }
    if (this.cache) {
      const hit = await this.cache.match(url);
      if (hit) {
        this.seen[name] = contentLength(hit) ?? null;
        return { size: contentLength(hit), stream: hit.body ?? bytesStream(new Uint8Array(await hit.arrayBuffer())), fromCache: true };
      }
    }
    if (this.manifest) return null; // listed but gone: treated as missing (init checked)
    let res;
    try {
      res = await fetch(url, { signal: this.signal });
    } catch (e) {
      if (this.signal?.aborted || e?.name === 'AbortError') throw abortError();
      throw new PinholeError('network', `cannot download ${url}: ${e?.message ?? e} (offline, or the server does not allow cross-origin requests?)`, { cause: e });
    }
    if (res.status === 404 || res.status === 410) {
      this.seen[name] = null;
      return null;
    }
    if (!res.ok) {
      throw new PinholeError('network', `cannot download ${url}: HTTP ${res.status} ${res.statusText}`);
    }
    const size = contentLength(res);
    this.seen[name] = size ?? null;
    if (!this.cache || !res.body) return { size, stream: res.body ?? bytesStream(new Uint8Array(await res.arrayBuffer())), fromCache: false };

    // Tee the body through a writer whose readable side feeds cache.put; the entry is
    // committed by commit() (closing the writer) and dropped by discard() (aborting it).
    const { readable, writable } = new TransformStream();
    const headers = { 'content-type': res.headers.get('content-type') ?? 'application/octet-stream' };
    if (size !== undefined) headers['content-length'] = String(size);
    const put = this.cache.put(url, new Response(readable, { headers })).catch(() => {});
    const writer = writable.getWriter();
    let written = 0;
    const reader = res.body.getReader();
    const stream = new ReadableStream({
      async pull(c) {
        const { value, done } = await reader.read();
        if (done) {
          c.close();
          return;
        }
        written += value.byteLength;
        await writer.ready;
        writer.write(value.slice()).catch(() => {});
        c.enqueue(value);
      },
      cancel(reason) {
        reader.cancel(reason).catch(() => {});
        writer.abort(reason).catch(() => {});
      },
    });
    this.pending.set(name, {
      commit: async () => {
        if (size !== undefined && written !== size) {
          await writer.abort(new Error('size mismatch')).catch(() => {});
          return;
        }
        await writer.close().catch(() => {});
        await put;
        this.seen[name] = written;
      },
      discard: async () => {
        await writer.abort(new Error('discarded')).catch(() => {});
        await put;
      },
    });
    return { size, stream, fromCache: false };
  }

  /** The engine accepted `name`: keep its cache entry. */
  async commit(name) {
    const p = this.pending.get(name);
    this.pending.delete(name);
    if (p) await p.commit();
  }

  async discardAll() {
    const all = [...this.pending.values()];
    this.pending.clear();
    await Promise.all(all.map((p) => p.discard()));
  }

  /** After a complete load: write the manifest so the next load needs no network. */
  async finish() {
    if (!this.cache) return;
    const body = JSON.stringify({ url: this.base, files: this.seen, savedAt: new Date().toISOString() });
    await this.cache.put(this.base + MANIFEST, new Response(body, { headers: { 'content-type': 'application/json' } })).catch(() => {});
  }
}

/** Local files: a FileList / File[] (from <input webkitdirectory>) or a FileSystemDirectoryHandle. */
export class LocalSource {
  constructor(source) {
    this.files = null;
    this.dir = null;
    if (typeof FileSystemDirectoryHandle !== 'undefined' && source instanceof FileSystemDirectoryHandle) {
      this.dir = source;
      this.place = source.name || 'local folder';
    } else {
      this.files = new Map();
      let folder = '';
      for (const f of Array.from(source)) {
        const rel = f.webkitRelativePath || f.name;
        folder ||= rel.includes('/') ? rel.split('/')[0] : '';
        // Files of the top folder only; a nested copy (e.g. a checkpoint subfolder) must not shadow them.
        const depth = rel.split('/').length;
        const name = rel.split('/').pop();
        const prev = this.files.get(name);
        if (!prev || depth < prev.depth) this.files.set(name, { file: f, depth });
      }
      this.place = folder || 'local files';
    }
  }

  async init() {}

  async open(name) {
    let file = null;
    if (this.files) {
      file = this.files.get(name)?.file ?? null;
    } else {
      try {
        file = await (await this.dir.getFileHandle(name)).getFile();
      } catch (e) {
        if (e?.name === 'NotFoundError' || e?.name === 'TypeMismatchError') return null;
        throw new PinholeError('bad-model', `cannot read ${name} in ${this.place}: ${e?.message ?? e}`, { cause: e });
      }
    }
    if (!file) return null;
    return { size: file.size, stream: file.stream(), fromCache: false };
  }

  async commit() {}
  async discardAll() {}
  async finish() {}
}

export function isLocalSource(source) {
  if (typeof FileSystemDirectoryHandle !== 'undefined' && source instanceof FileSystemDirectoryHandle) return true;
  if (typeof FileList !== 'undefined' && source instanceof FileList) return true;
  return Array.isArray(source) && source.length > 0 && source.every((f) => typeof Blob !== 'undefined' && f instanceof Blob);
}

/** Pinhole.cache.list(): the cached model folders with their files and sizes. */
export async function listCache() {
  if (!hasCaches() || !(await caches.has(CACHE_NAME))) return [];
  const cache = await caches.open(CACHE_NAME);
  const folders = new Map();
  for (const req of await cache.keys()) {
    const url = req.url;
    const cut = url.lastIndexOf('/') + 1;
    const base = url.slice(0, cut);
    const name = url.slice(cut);
    if (!folders.has(base)) folders.set(base, { url: base, files: [], bytes: 0, complete: false });
    const f = folders.get(base);
    if (name === MANIFEST) {
      f.complete = true;
      continue;
    }
    const res = await cache.match(req);
    const size = Number(res?.headers.get('content-length') ?? NaN);
    f.files.push({ name, bytes: Number.isFinite(size) ? size : null });
    if (Number.isFinite(size)) f.bytes += size;
  }
  return [...folders.values()].filter((f) => f.files.length > 0);
}

/** Pinhole.cache.delete(url?): removes one model folder (or everything); resolves to the number of entries removed. */
export async function deleteCache(url) {
  if (!hasCaches()) return 0;
  if (url === undefined || url === null) {
    const n = (await caches.has(CACHE_NAME)) ? (await (await caches.open(CACHE_NAME)).keys()).length : 0;
    await caches.delete(CACHE_NAME);
    return n;
  }
  if (!(await caches.has(CACHE_NAME))) return 0;
  const base = folderUrl(url);
  const cache = await caches.open(CACHE_NAME);
  let n = 0;
  for (const req of await cache.keys()) {
    if (req.url.startsWith(base)) {
      await cache.delete(req);
      n++;
    }
  }
  return n;
}
