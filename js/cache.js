// @ts-check
// Model files: where they come from (a URL folder, a map of file URLs such as the bundled
// model's, local files, a directory handle) and the Cache Storage copy that makes the next load
// work offline without a single request.
//
// Every source answers the same question for a file name: null (absent), or its exact size when
// known, its content type and a ReadableStream of its bytes.
//
// The cache cannot be poisoned:
// * A load writes each downloaded file under a key of its own (`<url>?pinhole-load=<id>`) while
//   it streams; the engine commits an entry only after it checked the file (parsed the configs,
//   read the whole safetensors file against its header). The bytes are counted and hashed
//   (SHA-256 per 4 MiB block, crypto.subtle) as they stream.
// * Only a complete load writes the folder's manifest: for each file its key, byte count and
//   hashes (or null: probed and absent). The manifest is the commit point; the previous
//   manifest and its entries stay valid until the new one replaces them, so an aborted or
//   failed load leaves the previous good state untouched. Entries no manifest refers to are
//   deleted then.
// * A load from the manifest reads each entry through a verifier that hands out a block only
//   after its hash matched; a mismatch (or a missing entry) throws `CacheCorrupt`, drops the
//   manifest and the entry, and the engine loads again from the network.

import { PinholeError, abortError } from './errors.js';

export const CACHE_NAME = 'pinhole-models-v1';
const MANIFEST = '.pinhole-manifest.json';
const MANIFEST_VERSION = 2;
/** Bytes per hashed block: bounded memory when verifying, and a small manifest for big files. */
export const HASH_BLOCK = 4 << 20;

/**
 * @typedef {{size: number | undefined, contentType: string, stream: ReadableStream<Uint8Array>, fromCache: boolean}} OpenedFile
 * `size` is exact when given (a File's size, or an uncompressed same-origin Content-Length);
 * otherwise the engine learns it from the bytes (the safetensors header, the end of the stream).
 * @typedef {{key: string, url: string, bytes: number, sha256: string[], contentType: string, inline?: boolean}} ManifestEntry
 * `inline`: a data: or blob: URL (a bundler inlines small files as data: URLs); nothing to cache.
 */

function hasCaches() {
  return typeof caches !== 'undefined' && typeof caches.open === 'function' && typeof crypto !== 'undefined' && !!crypto.subtle;
}

async function openCache() {
  if (!hasCaches()) return null;
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // opaque origins, private modes: load without caching
  }
}

/** The URL that relative model URLs resolve against: the calling page's, not this module's. */
export function baseUrl() {
  const g = /** @type {any} */ (globalThis);
  return g.document?.baseURI ?? g.location?.href;
}

/** Normalises a model folder URL: absolute, ends with '/'. */
export function folderUrl(source) {
  let u = new URL(String(source), baseUrl()).href;
  u = u.replace(/[?#].*$/, '');
  return u.endsWith('/') ? u : u + '/';
}

/**
 * The exact size of a response body, when the headers can tell it: a same-origin response
 * without Content-Encoding. A cross-origin response hides Content-Encoding but shows
 * Content-Length, which then may count compressed bytes, so it is not trusted.
 * @param {Response} res
 */
function exactLength(res) {
  if (res.type !== 'basic' || res.headers.get('content-encoding')) return undefined;
  const v = res.headers.get('content-length');
  const n = Number(v);
  return v !== null && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** @param {ArrayBuffer} buf */
function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Splits a byte stream into HASH_BLOCK blocks and hashes each. */
class BlockHasher {
  constructor() {
    /** @type {Promise<string>[]} */
    this.digests = [];
    this.block = new Uint8Array(HASH_BLOCK);
    this.fill = 0;
    this.bytes = 0;
  }

  /** @param {Uint8Array} chunk */
  push(chunk) {
    this.bytes += chunk.byteLength;
    let o = 0;
    while (o < chunk.byteLength) {
      const n = Math.min(HASH_BLOCK - this.fill, chunk.byteLength - o);
      this.block.set(chunk.subarray(o, o + n), this.fill);
      this.fill += n;
      o += n;
      if (this.fill === HASH_BLOCK) this.flush();
    }
  }

  flush() {
    const done = this.block.slice(0, this.fill);
    this.digests.push(crypto.subtle.digest('SHA-256', done).then(hex));
    this.fill = 0;
  }

  /** @returns {Promise<string[]>} */
  async finish() {
    if (this.fill > 0 || this.digests.length === 0) this.flush();
    return Promise.all(this.digests);
  }
}

/** A cached entry failed verification; the engine drops it and downloads again. */
export class CacheCorrupt extends PinholeError {
  /** @param {string} name @param {string} url @param {string} why */
  constructor(name, url, why) {
    super('bad-model', `the cached copy of ${url} is corrupt (${why})`);
    this.file = name;
  }
}

/**
 * Reads a cached entry, handing out each block only after its hash matched the manifest.
 * @param {ReadableStream<Uint8Array>} body @param {ManifestEntry} entry
 * @param {(why: string) => Promise<Error>} corrupt
 */
function verifiedStream(body, entry, corrupt) {
  const reader = body.getReader();
  // Every block is HASH_BLOCK bytes but the last.
  const block = new Uint8Array(Math.min(HASH_BLOCK, entry.bytes));
  let fill = 0;
  let index = 0;
  let total = 0;
  let ended = false;
  const check = async () => {
    const got = hex(await crypto.subtle.digest('SHA-256', block.subarray(0, fill)));
    if (got !== entry.sha256[index]) throw await corrupt(`block ${index} does not match its SHA-256`);
    index += 1;
    const out = block.slice(0, fill);
    fill = 0;
    return out;
  };
  return new ReadableStream({
    async pull(c) {
      try {
        for (;;) {
          if (ended) {
            c.close();
            return;
          }
          const { value, done } = await reader.read();
          if (done) {
            ended = true;
            if (total !== entry.bytes) throw await corrupt(`${total} bytes instead of ${entry.bytes}`);
            if (fill > 0 || index === 0) c.enqueue(await check());
            if (index !== entry.sha256.length) throw await corrupt(`${index} blocks instead of ${entry.sha256.length}`);
            c.close();
            return;
          }
          total += value.byteLength;
          if (total > entry.bytes) throw await corrupt(`more than ${entry.bytes} bytes`);
          let o = 0;
          let out = null;
          while (o < value.byteLength) {
            const n = Math.min(block.byteLength - fill, value.byteLength - o);
            block.set(value.subarray(o, o + n), fill);
            fill += n;
            o += n;
            if (fill === block.byteLength) {
              const verified = await check();
              out = out ? concat(out, verified) : verified;
            }
          }
          if (out) {
            c.enqueue(out);
            return;
          }
        }
      } catch (e) {
        reader.cancel().catch(() => {});
        c.error(e);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function concat(a, b) {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/** A stream of one chunk. @param {Uint8Array} bytes */
function bytesStream(bytes) {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}

function randomId() {
  const a = new Uint8Array(8);
  crypto.getRandomValues(a);
  return hex(a.buffer);
}

/**
 * Model files at URLs, with the cache in front: a folder (`base` + name), or an explicit map
 * from file name to URL (the bundled model, whose files a bundler may rename).
 */
export class UrlSource {
  /**
   * @param {string | {folder: string, files: Record<string, string>, place?: string}} source
   * @param {{signal?: AbortSignal, readCache?: boolean}} [opts]
   */
  constructor(source, { signal, readCache = true } = {}) {
    if (typeof source === 'object' && source && 'files' in source) {
      this.base = folderUrl(source.folder);
      /** @type {Record<string, string> | null} */
      this.map = source.files;
      this.place = source.place ?? this.base;
    } else {
      this.base = folderUrl(source);
      this.map = null;
      this.place = this.base;
    }
    this.signal = signal;
    this.readCache = readCache;
    /** @type {Cache | null} */
    this.cache = null;
    /** @type {{version: number, url: string, files: Record<string, ManifestEntry | null>} | null} */
    this.manifest = null; // set when the folder is fully cached and this load reads from it
    this.loadId = '';
    /** @type {Map<string, {commit: () => Promise<ManifestEntry | null>, discard: () => Promise<void>}>} */
    this.pending = new Map();
    this.incomplete = false; // a file of this load is not in the cache: write no manifest
    /** @type {Record<string, ManifestEntry | null>} */
    this.entries = {}; // committed by this load
    /** @type {string[]} */
    this.written = []; // keys this load wrote
  }

  /** @param {string} name */
  url(name) {
    if (this.map) return this.map[name] ?? null;
    return this.base + name;
  }

  async init() {
    this.cache = await openCache();
    if (!this.cache) return;
    this.loadId = randomId();
    if (!this.readCache) return;
    const m = await this.cache.match(this.base + MANIFEST);
    if (!m) return;
    try {
      const man = await m.json();
      if (man?.version !== MANIFEST_VERSION || typeof man.files !== 'object') return;
      // Every listed file must still be cached under its key, and (for a map of URLs, whose
      // names a new build of the app may change) come from the same URL.
      for (const [name, e] of Object.entries(man.files)) {
        if (e === null) continue;
        if (this.url(name) !== e.url) return;
        if (!e.inline && !(await this.cache.match(e.key))) return;
      }
      this.manifest = man;
    } catch {
      /* a bad manifest: ignore it and load from the network (a complete load replaces it) */
    }
  }

  /**
   * @param {string} name
   * @returns {Promise<OpenedFile | null>}
   */
  async open(name) {
    if (this.signal?.aborted) throw abortError();
    if (this.manifest) return this.openCached(name, this.manifest);
    const url = this.url(name);
    if (url === null) return null;
    let res;
    try {
      res = await fetch(url, { signal: this.signal });
    } catch (e) {
      if (this.signal?.aborted || e?.name === 'AbortError') throw abortError();
      throw new PinholeError('network', `cannot download ${url}: ${e?.message ?? e} (offline, or the server does not allow cross-origin requests?)`, { cause: e });
    }
    if (res.status === 404 || res.status === 410) {
      res.body?.cancel().catch(() => {});
      this.entries[name] = null;
      return null;
    }
    if (!res.ok) {
      res.body?.cancel().catch(() => {});
      throw new PinholeError('network', `cannot download ${url}: HTTP ${res.status} ${res.statusText}`);
    }
    const size = exactLength(res);
    const contentType = res.headers.get('content-type') ?? '';
    if (!res.body) {
      this.incomplete = true;
      return { size, contentType, stream: bytesStream(new Uint8Array(await res.arrayBuffer())), fromCache: false };
    }
    if (!this.cache) return { size, contentType, stream: res.body, fromCache: false };
    if (isInline(url)) {
      // The bytes are in the URL itself: the manifest notes the file, the cache keeps nothing.
      this.entries[name] = { key: '', url, bytes: size ?? -1, sha256: [], contentType, inline: true };
      return { size, contentType, stream: res.body, fromCache: false };
    }
    return { size, contentType, stream: this.record(name, url, res.body, contentType), fromCache: false };
  }

  /**
   * Streams a response body to the engine and, at the same time, into a new cache entry of
   * this load; counts and hashes the bytes.
   * @param {string} name @param {string} url @param {ReadableStream<Uint8Array>} body @param {string} contentType
   */
  record(name, url, body, contentType) {
    const cache = /** @type {Cache} */ (this.cache);
    const key = `${url}${url.includes('?') ? '&' : '?'}pinhole-load=${this.loadId}`;
    const { readable, writable } = new TransformStream();
    const writer = writable.getWriter();
    const hasher = new BlockHasher();
    let failed = false;
    const put = cache.put(key, new Response(readable, { headers: { 'content-type': contentType || 'application/octet-stream' } }));
    // A refused write (quota, an unsupported URL) must not stall the stream on back-pressure.
    put.catch(() => {
      failed = true;
      writer.abort(new Error('the cache refused the entry')).catch(() => {});
    });
    this.written.push(key);
    let ended = false;
    const reader = body.getReader();
    const stream = new ReadableStream({
      async pull(c) {
        let r;
        try {
          r = await reader.read();
        } catch (e) {
          failed = true;
          writer.abort(e).catch(() => {});
          throw e;
        }
        if (r.done) {
          ended = true;
          c.close();
          return;
        }
        hasher.push(r.value);
        // Back-pressure from the cache write bounds the memory; its failure (quota) only means
        // this load writes no manifest.
        if (!failed) {
          try {
            await writer.ready;
            writer.write(r.value.slice()).catch(() => {
              failed = true;
            });
          } catch {
            failed = true;
          }
        }
        c.enqueue(r.value);
      },
      cancel(reason) {
        failed = true;
        writer.abort(reason).catch(() => {});
        return reader.cancel(reason);
      },
    });
    const commit = async () => {
      if (!ended || failed) {
        await writer.abort(new Error('not complete')).catch(() => {});
        await put.catch(() => {});
        return null;
      }
      await writer.close().catch(() => {
        failed = true;
      });
      const ok = await put.then(
        () => true,
        () => false,
      );
      if (!ok || failed) return null;
      return { key, url, bytes: hasher.bytes, sha256: await hasher.finish(), contentType };
    };
    const discard = async () => {
      await writer.abort(new Error('discarded')).catch(() => {});
      await put.catch(() => {});
    };
    this.pending.set(name, { commit, discard });
    return stream;
  }

  /**
   * @param {string} name @param {{files: Record<string, ManifestEntry | null>}} man
   * @returns {Promise<OpenedFile | null>}
   */
  async openCached(name, man) {
    const e = man.files[name];
    if (!e) return null; // probed and absent when the folder was cached (or never needed)
    if (e.inline) {
      const res = await fetch(e.url);
      if (!res.ok || !res.body) throw new CacheCorrupt(name, e.url, `the inline URL gave HTTP ${res.status}`);
      return { size: undefined, contentType: e.contentType, stream: res.body, fromCache: true };
    }
    const cache = /** @type {Cache} */ (this.cache);
    const corrupt = async (/** @type {string} */ why) => {
      await this.dropCorrupt(e.key);
      return new CacheCorrupt(name, e.url, why);
    };
    const hit = await cache.match(e.key);
    if (!hit || !hit.body) throw await corrupt('the entry is gone');
    return { size: e.bytes, contentType: e.contentType, stream: verifiedStream(hit.body, e, corrupt), fromCache: true };
  }

  /** A cached entry failed verification: forget the manifest (so the next load downloads) and the entry. @param {string} key */
  async dropCorrupt(key) {
    this.manifest = null;
    const cache = /** @type {Cache} */ (this.cache);
    await cache.delete(this.base + MANIFEST).catch(() => {});
    await cache.delete(key).catch(() => {});
  }

  /** The engine accepted `name`: its entry joins the manifest of this load. @param {string} name */
  async commit(name) {
    if (this.manifest) return;
    const p = this.pending.get(name);
    this.pending.delete(name);
    if (!p) return;
    const e = await p.commit();
    if (e) this.entries[name] = e;
    else this.incomplete = true;
  }

  /**
   * The engine treats `name` as absent (an SPA fallback page, not the file).
   * @param {string} name
   */
  async absent(name) {
    if (this.manifest) return;
    const p = this.pending.get(name);
    this.pending.delete(name);
    if (p) await p.discard();
    this.entries[name] = null;
  }

  /** A failed or aborted load: drop what it wrote; the previous manifest and entries stay. */
  async discardAll() {
    const all = [...this.pending.values()];
    this.pending.clear();
    await Promise.all(all.map((p) => p.discard()));
    if (this.cache && !this.manifest) {
      const cache = this.cache;
      await Promise.all(this.written.map((k) => cache.delete(k).catch(() => false)));
    }
  }

  /** After a complete load: write the manifest, then delete the entries it replaced. */
  async finish() {
    if (!this.cache || this.manifest) return;
    const cache = this.cache;
    const entries = this.entries;
    // A file whose cache write failed (quota) makes the copy incomplete: no manifest, and the
    // next load downloads again.
    if (this.incomplete || this.pending.size > 0) {
      await this.discardAll();
      return;
    }
    const body = JSON.stringify({ version: MANIFEST_VERSION, url: this.base, place: this.place, files: entries, savedAt: new Date().toISOString() });
    try {
      await cache.put(this.base + MANIFEST, new Response(body, { headers: { 'content-type': 'application/json' } }));
    } catch {
      await this.discardAll();
      return;
    }
    const keep = new Set(Object.values(entries).flatMap((e) => (e && !e.inline ? [e.key] : [])));
    keep.add(this.base + MANIFEST);
    for (const req of await cache.keys()) {
      if (isUnder(req.url, this.base) && !keep.has(req.url)) await cache.delete(req).catch(() => {});
    }
  }
}

/** @param {string} url */
function isInline(url) {
  return url.startsWith('data:') || url.startsWith('blob:');
}

/** Whether a cache key belongs to the folder `base` (the folder itself, not subfolders). */
function isUnder(url, base) {
  if (!url.startsWith(base)) return false;
  const rest = url.slice(base.length).replace(/\?.*$/, '');
  return !rest.includes('/');
}

/** Local files: a FileList / File[] (from <input webkitdirectory>) or a FileSystemDirectoryHandle. */
export class LocalSource {
  /** @param {any} source */
  constructor(source) {
    /** @type {Map<string, {file: File, depth: number}> | null} */
    this.files = null;
    /** @type {any} */
    this.dir = null;
    if (typeof FileSystemDirectoryHandle !== 'undefined' && source instanceof FileSystemDirectoryHandle) {
      this.dir = source;
      this.place = source.name || 'local folder';
    } else {
      this.files = new Map();
      let folder = '';
      for (const f of Array.from(/** @type {Iterable<File>} */ (source))) {
        const rel = f.webkitRelativePath || f.name;
        folder ||= rel.includes('/') ? rel.split('/')[0] : '';
        // Files of the top folder only; a nested copy (e.g. a checkpoint subfolder) must not shadow them.
        const depth = rel.split('/').length;
        const name = /** @type {string} */ (rel.split('/').pop());
        const prev = this.files.get(name);
        if (!prev || depth < prev.depth) this.files.set(name, { file: f, depth });
      }
      this.place = folder || 'local files';
    }
  }

  async init() {}

  /**
   * @param {string} name
   * @returns {Promise<OpenedFile | null>}
   */
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
    return { size: file.size, contentType: file.type, stream: /** @type {ReadableStream<Uint8Array>} */ (file.stream()), fromCache: false };
  }

  /** @param {string} _name */
  async commit(_name) {}
  /** @param {string} _name */
  async absent(_name) {}
  async discardAll() {}
  async finish() {}
}

/** @param {unknown} source */
export function isLocalSource(source) {
  if (typeof FileSystemDirectoryHandle !== 'undefined' && source instanceof FileSystemDirectoryHandle) return true;
  if (typeof FileList !== 'undefined' && source instanceof FileList) return true;
  return Array.isArray(source) && source.length > 0 && source.every((f) => typeof Blob !== 'undefined' && f instanceof Blob);
}

/**
 * Pinhole.cache.list(): the cached model folders with their files and sizes. `complete` is true
 * when a manifest (a finished load) describes the folder; sizes come from the manifest.
 */
export async function listCache() {
  if (!hasCaches() || !(await caches.has(CACHE_NAME))) return [];
  const cache = await caches.open(CACHE_NAME);
  /** @type {Map<string, {url: string, files: {name: string, bytes: number | null}[], bytes: number, complete: boolean}>} */
  const folders = new Map();
  const keys = (await cache.keys()).map((r) => r.url);
  for (const url of keys) {
    if (!url.endsWith('/' + MANIFEST)) continue;
    const base = url.slice(0, url.length - MANIFEST.length);
    const man = await (await cache.match(url))?.json().catch(() => null);
    if (man?.version !== MANIFEST_VERSION) continue;
    /** @type {[string, ManifestEntry | null][]} */
    const listed = Object.entries(man.files ?? {});
    const files = listed.flatMap(([name, e]) => (e && !e.inline ? [{ name, bytes: e.bytes }] : []));
    folders.set(base, { url: base, files, bytes: files.reduce((s, f) => s + f.bytes, 0), complete: true });
  }
  // Entries of loads that did not finish (a closed tab): listed so they can be deleted.
  for (const url of keys) {
    if (url.endsWith('/' + MANIFEST)) continue;
    const plain = url.replace(/\?.*$/, '');
    const cut = plain.lastIndexOf('/') + 1;
    const base = plain.slice(0, cut);
    if (folders.get(base)?.complete) continue;
    if (!folders.has(base)) folders.set(base, { url: base, files: [], bytes: 0, complete: false });
    /** @type {any} */ (folders.get(base)).files.push({ name: plain.slice(cut), bytes: null });
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
