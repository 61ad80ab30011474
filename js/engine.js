// @ts-check
// The engine side of the package: it owns the wasm instance (pkg/, built from
// crates/pinhole-web), streams model files into it and runs generation. It runs inside the
// module worker (js/worker.js) by default, or on the page with `worker: false`.
//
// Panics: a Rust panic aborts the wasm instance. The panic hook tells us first (onPanic), the
// call in flight rejects with code 'internal', the instance is dropped, and the next call
// instantiates a fresh one (a new import of the glue module, so it has its own memory) and
// reloads the model from where it came from (the cache, or the same files).
//
// Device loss: a GPUDevice can be lost at any time (GPU reset or driver update, the GPU
// process crashing, `destroy()`). The call in flight rejects with code 'device-lost'; the
// engine (device) and model are dropped, and the next call opens a new device and reloads the
// model the same way. A loss noticed between calls (`GPUDevice.lost` resolved while idle) is
// recovered before the next call starts, so that call just works.

import { PinholeError, toPinholeError, abortError, NO_WEBGPU_MESSAGE, NO_ADAPTER_MESSAGE } from './errors.js';
import { UrlSource, LocalSource, isLocalSource, CacheCorrupt } from './cache.js';

const GLUE_URL = new URL('../pkg/pinhole_web.js', import.meta.url).href;
const WASM_URL = new URL('../pkg/pinhole_web_bg.wasm', import.meta.url).href;

let instances = 0;

/**
 * Loads a fresh wasm instance: its glue module and its linear memory (for the memory report).
 * @returns {Promise<{glue: any, memory: WebAssembly.Memory | null}>}
 */
async function instantiate(onPanic) {
  instances += 1;
  // A different URL is a different module record: its own `wasm` and memory.
  const url = instances === 1 ? GLUE_URL : `${GLUE_URL}?instance=${instances}`;
  const glue = await import(/* @vite-ignore */ /* webpackIgnore: true */ url);
  const exports = await glue.default({ module_or_path: WASM_URL });
  glue.onPanic?.(onPanic);
  return { glue, memory: exports?.memory instanceof WebAssembly.Memory ? exports.memory : null };
}

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';
const PROCESSOR_FILES = ['preprocessor_config.json', 'processor_config.json'];
/** Where a chat model's template can be, in transformers' order (fetched for chat models only). */
const CHAT_TEMPLATE_FILES = ['chat_template.jinja', 'chat_template.json', 'processor_config.json', 'tokenizer_config.json'];
/** The loader's default bound on wasm memory for float weights (crates/pinhole-models' DEFAULT_HOST_BOUND). */
const DEFAULT_HOST_BYTES = 256 * 1024 * 1024;
/** A safetensors header larger than this is not sniffed for progress (the loader still reads it). */
const MAX_SNIFFED_HEADER = 100 << 20;

/**
 * Whether a response is a web page rather than the file asked for: a single-page app's server
 * (Vite's default, most static hosts with a fallback) answers every unknown path with its
 * index.html and status 200.
 * @param {string} contentType @param {Uint8Array} [head] the first bytes of the body
 */
function isHtml(contentType, head) {
  if (/^\s*text\/html/i.test(contentType)) return true;
  if (!head) return false;
  for (const b of head) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0xef || b === 0xbb || b === 0xbf) continue;
    return b === 0x3c; // '<': neither JSON nor a safetensors length prefix starts with it
  }
  return false;
}

/**
 * Whether a text file (a Jinja chat template, which may itself start with '<', as
 * `<|im_start|>` does) is in fact a web page.
 * @param {string} contentType @param {Uint8Array} bytes
 */
function isHtmlPage(contentType, bytes) {
  if (/^\s*text\/html/i.test(contentType)) return true;
  return /^\s*<(!doctype\s+html|html[\s>])/i.test(new TextDecoder().decode(bytes.subarray(0, 64)));
}

/** @param {Uint8Array} bytes */
function parsesAsJson(bytes) {
  try {
    JSON.parse(new TextDecoder().decode(bytes));
    return true;
  } catch {
    return false;
  }
}

/**
 * @param {ReadableStream<Uint8Array>} stream @param {number | undefined} size exact size, if known
 * @param {string} what the file's URL or path, for errors @param {AbortSignal | undefined} signal
 */
async function readAll(stream, size, what, signal) {
  const reader = stream.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    if (signal?.aborted) {
      reader.cancel().catch(() => {});
      throw abortError();
    }
    let r;
    try {
      r = await reader.read();
    } catch (e) {
      throw readError(e, what, n, signal);
    }
    if (r.done) break;
    parts.push(r.value);
    n += r.value.byteLength;
  }
  if (size !== undefined && n !== size) {
    throw new PinholeError('network', `${what}: ${n} of ${size} bytes arrived; the download was cut: load again`);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** A failed read of a body: an abort, a corrupt cache entry, or the network. */
function readError(e, what, n, signal) {
  if (signal?.aborted || e?.name === 'AbortError' || e?.code === 'aborted') return abortError();
  if (e instanceof PinholeError) return e;
  return new PinholeError('network', `${what}: the download failed after ${n} bytes (${e?.message ?? e}); load again`, { cause: e });
}

/**
 * Reads the first bytes of a stream without losing them: resolves to those bytes and a stream
 * that yields everything, them included.
 * @param {ReadableStream<Uint8Array>} stream
 */
async function peek(stream) {
  const reader = stream.getReader();
  const first = await reader.read();
  const head = first.done ? new Uint8Array(0) : first.value;
  let sent = false;
  const whole = new ReadableStream({
    async pull(c) {
      if (!sent) {
        sent = true;
        if (first.done) c.close();
        else c.enqueue(head);
        return;
      }
      const r = await reader.read();
      if (r.done) c.close();
      else c.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { head, stream: whole };
}

/**
 * Learns a safetensors file's length from its header as the first chunks pass by: 8 bytes of
 * header length, the JSON header, then data up to the largest `data_offsets` end. Progress only;
 * the Rust loader checks the same header for real.
 */
class HeaderSniffer {
  constructor() {
    this.buf = new Uint8Array(0);
    this.given = false;
  }

  /** @param {Uint8Array} chunk @returns {number | null} the file length, once known (once) */
  push(chunk) {
    if (this.given) return null;
    const limit = this.buf.byteLength >= 8 ? 8 + this.headerLen() : 8 + MAX_SNIFFED_HEADER;
    const take = chunk.subarray(0, Math.max(0, limit - this.buf.byteLength));
    const b = new Uint8Array(this.buf.byteLength + take.byteLength);
    b.set(this.buf, 0);
    b.set(take, this.buf.byteLength);
    this.buf = b;
    if (this.buf.byteLength < 8) return null;
    const n = this.headerLen();
    if (n > MAX_SNIFFED_HEADER) {
      this.given = true;
      return null;
    }
    if (this.buf.byteLength < 8 + n) return null;
    this.given = true;
    const json = this.buf.subarray(8, 8 + n);
    this.buf = new Uint8Array(0);
    try {
      const header = JSON.parse(new TextDecoder().decode(json));
      let end = 0;
      for (const [k, v] of Object.entries(header)) {
        if (k !== '__metadata__' && Array.isArray(v?.data_offsets)) end = Math.max(end, Number(v.data_offsets[1]) || 0);
      }
      return 8 + n + end;
    } catch {
      return null;
    }
  }

  headerLen() {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset, 8);
    return v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
  }
}

/**
 * Progress of one load. Every event satisfies totalLoaded <= totalBytes, and they are equal on
 * the 'ready' event. A file's size counts once it is known exactly (File.size, an uncompressed
 * Content-Length, the safetensors header, the end of its stream); until then its bytes so far.
 * For a sharded checkpoint the index's `total_size` stands in for shards not opened yet.
 */
class Progress {
  /** @param {(e: object) => void} emit */
  constructor(emit) {
    this.emit = emit;
    /** @type {Map<string, {loaded: number, size: number | null}>} */
    this.files = new Map();
    this.pendingData = 0; // bytes expected from shards not opened yet
  }

  /** @param {string} name @param {number} loaded @param {number | null} size */
  set(name, loaded, size) {
    this.files.set(name, { loaded, size });
  }

  get totalLoaded() {
    let t = 0;
    for (const f of this.files.values()) t += f.loaded;
    return t;
  }

  get totalBytes() {
    let t = this.pendingData;
    for (const f of this.files.values()) t += Math.max(f.loaded, f.size ?? 0);
    return Math.max(t, this.totalLoaded);
  }

  /** @param {string} name @param {string} phase */
  event(name, phase) {
    const f = this.files.get(name) ?? { loaded: 0, size: null };
    this.emit({ file: name, loaded: f.loaded, total: f.size, phase, totalLoaded: this.totalLoaded, totalBytes: this.totalBytes });
  }

  ready() {
    this.pendingData = 0;
    const t = this.totalLoaded;
    this.emit({ file: null, loaded: t, total: t, phase: 'ready', totalLoaded: t, totalBytes: t });
  }
}

/**
 * Checks chat `messages` (`[{role, content}]`, content a string or a list of `{type: 'text',
 * text}` / `{type: 'image'}` parts, as transformers' apply_chat_template takes) and returns
 * them as JSON for the engine.
 * @param {unknown} messages @param {string | undefined} prompt
 */
function messagesToJson(messages, prompt) {
  const bad = (why) => new PinholeError('bad-request', `messages: ${why}; give [{role: 'user', content: [{type: 'image'}, {type: 'text', text: '...'}]}]`);
  if (prompt !== undefined) throw new PinholeError('bad-request', 'give either prompt or messages, not both');
  if (!Array.isArray(messages) || messages.length === 0) throw bad('not a non-empty array');
  let images = 0;
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') throw bad(`message ${i} has no role`);
    if (typeof m.content === 'string') continue;
    if (!Array.isArray(m.content)) throw bad(`message ${i}'s content is neither a string nor a list of parts`);
    for (const part of m.content) {
      if (part?.type === 'image') images += 1;
      else if (part?.type === 'text' && typeof part.text === 'string') continue;
      else if (part?.type !== 'image') throw bad(`message ${i} has a part that is neither {type: 'image'} nor {type: 'text', text}`);
    }
  }
  if (images !== 1) throw bad(`${images} image parts; pinhole takes exactly one image per request (the image argument)`);
  try {
    // Only what JSON keeps reaches the template (an image object inside a part becomes {}).
    return JSON.stringify(messages);
  } catch (e) {
    throw bad(`not JSON-serialisable (${e?.message ?? e})`);
  }
}

export class Engine {
  constructor() {
    this.glue = null;
    /** The instance's linear memory (its size is reported after a load). @type {WebAssembly.Memory | null} */
    this.wasmMemory = null;
    this.engine = null;
    this.model = null;
    this.modelInfo = null;
    this.adapter = null;
    this.loadArgs = null; // how to reload after a panic
    this.panic = null; // {promise, reject} of the current instance
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
  }

  /**
   * Runs `fn` after every earlier call (one GPU job at a time, in order).
   * @template T
   * @param {() => Promise<T>} fn
   * @returns {Promise<T>}
   */
  serial(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  resetPanic() {
    let reject;
    const promise = new Promise((_, r) => {
      reject = r;
    });
    promise.catch(() => {});
    this.panic = { promise, reject };
  }

  onPanic(message) {
    const err = new PinholeError('internal', `pinhole crashed (a bug: ${message}); the engine restarts on the next call`);
    this.dead = true;
    this.panic?.reject(err);
  }

  // Races a call into wasm against a panic of the instance.
  async guard(promiseOrFn) {
    try {
      const p = typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn;
      return await Promise.race([p, this.panic.promise]);
    } catch (e) {
      if (this.dead || (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError)) {
        const msg = this.safe(() => this.glue?.lastPanic?.()) ?? e?.message ?? String(e);
        this.dropInstance();
        throw e instanceof PinholeError && e.code === 'internal'
          ? e
          : new PinholeError('internal', `pinhole crashed (a bug: ${msg}); the engine restarts on the next call`, { cause: e });
      }
      const err = toPinholeError(e);
      if (err.code === 'device-lost' || (err.code === 'gpu' && (await this.deviceLost()))) {
        // A failed mapping or a validation error can reach us before GPUDevice.lost's
        // callback ran: the loss is the cause to report either way.
        const reason = this.safe(() => this.engine?.lostReason()) ?? err.message;
        this.dropDevice();
        throw err.code === 'device-lost'
          ? new PinholeError('device-lost', `${err.message}. The next call opens a new device and loads the model again.`, { cause: e })
          : new PinholeError('device-lost', `the GPU device was lost (${reason}); the next call opens a new device and loads the model again`, { cause: e });
      }
      throw err;
    }
  }

  /** Whether the device was lost, after letting a pending GPUDevice.lost callback run. */
  async deviceLost() {
    if (!this.engine) return false;
    await new Promise((r) => setTimeout(r, 0));
    return Boolean(this.safe(() => this.engine?.lostReason()));
  }

  /**
   * Forgets the device and the model on it (their GPU memory is gone); the wasm instance is
   * fine and stays. The next call opens a new device and reloads the model (revive()).
   */
  dropDevice() {
    this.safe(() => this.model?.dispose());
    this.safe(() => this.model?.free());
    this.safe(() => this.engine?.free());
    this.model = null;
    this.engine = null;
  }

  /** Before a call: a device lost while idle is replaced now instead of failing the call. */
  recoverLostDevice() {
    if (this.engine && this.safe(() => this.engine.lostReason())) this.dropDevice();
  }

  safe(fn) {
    try {
      return fn();
    } catch {
      return undefined;
    }
  }

  dropInstance() {
    this.glue = null;
    this.wasmMemory = null;
    this.engine = null;
    this.model = null;
    this.dead = false;
  }

  async ensureInstance(maxBindingBytes) {
    this.recoverLostDevice();
    if (this.engine) return;
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) throw new PinholeError('no-webgpu', NO_WEBGPU_MESSAGE);
    if (!this.glue) {
      this.resetPanic();
      ({ glue: this.glue, memory: this.wasmMemory } = await instantiate((m) => this.onPanic(m)));
    }
    try {
      this.engine = await this.guard(() => this.glue.Engine.open(maxBindingBytes ?? undefined));
    } catch (e) {
      if (e.code === 'no-webgpu') throw new PinholeError('no-webgpu', `${NO_ADAPTER_MESSAGE} (${e.message})`);
      throw e;
    }
    this.adapter = JSON.parse(this.engine.adapterJson());
  }

  /**
   * Loads a model. `source`: URL string | URL | FileList | File[] | FileSystemDirectoryHandle.
   * @param {{dtype?: string, maxBindingBytes?: number, maxHostBytes?: number, f16Math?: boolean, signal?: AbortSignal, onProgress?: (e: object) => void}} [opts]
   */
  load(source, opts = {}) {
    return this.serial(() => this.loadNow(source, opts));
  }

  /**
   * @param {any} source
   * @param {{dtype?: string, maxBindingBytes?: number, maxHostBytes?: number, f16Math?: boolean, signal?: AbortSignal, onProgress?: (e: object) => void}} [opts]
   */
  async loadNow(source, { dtype = 'auto', maxBindingBytes, maxHostBytes, f16Math = false, signal, onProgress } = {}) {
    if (signal?.aborted) throw abortError();
    await this.ensureInstance(maxBindingBytes);
    // Set on every load (a later load without it turns it off); fails on an adapter without
    // shader-f16 before anything is downloaded.
    await this.guard(() => this.engine.setF16Math(f16Math === true));
    if (this.model) {
      this.safe(() => this.model.dispose());
      this.model = null;
    }
    /** @param {object} e */
    const progress = (e) => {
      try {
        onProgress?.(e);
      } catch {
        /* a throwing progress callback must not break the load */
      }
    };
    const opts = { dtype, maxHostBytes, signal, progress };
    const t0 = performance.now();
    let out;
    if (isLocalSource(source)) {
      out = await this.loadFrom(new LocalSource(source), opts);
    } else {
      try {
        out = await this.loadFrom(new UrlSource(source, { signal }), opts);
      } catch (e) {
        if (!(e instanceof CacheCorrupt) || signal?.aborted) throw e;
        // The source dropped the bad entry and the manifest: download everything again.
        try {
          out = await this.loadFrom(new UrlSource(source, { signal, readCache: false }), opts);
        } catch (e2) {
          if (e2?.code !== 'network') throw e2;
          throw new PinholeError('bad-model', `${e.message}; it was removed from the cache, and downloading ${e.file} again failed (${e2.message}): go online and load again`, { cause: e2 });
        }
      }
    }
    this.loadArgs = { source, opts: { dtype, maxBindingBytes, maxHostBytes, f16Math } };
    return { ...out, loadMs: performance.now() - t0 };
  }

  /**
   * One attempt at loading from one source.
   * @param {UrlSource | LocalSource} src
   * @param {{dtype: string, maxHostBytes?: number, signal?: AbortSignal, progress: (e: object) => void}} opts
   */
  async loadFrom(src, { dtype, maxHostBytes, signal, progress }) {
    const tally = new Progress(progress);
    const place = src.place.endsWith('/') ? src.place : `${src.place}/`;
    // Set when a server answered a model file with a web page: the error then says so.
    let htmlAt = '';
    const missing = (name) =>
      new PinholeError(
        'bad-model',
        `${src.place}: ${name} is missing` +
          (htmlAt
            ? ` (the server answered ${htmlAt} with an HTML page, not the file: a single-page app's fallback? check the model URL)`
            : '; a model folder in Hugging Face layout has config.json, tokenizer.json, preprocessor_config.json and model.safetensors (or model.safetensors.index.json and its shards)'),
      );
    /**
     * A JSON file, or null when it is absent. An HTML page instead of it counts as absent; an
     * optional file that does not parse as JSON too (it is not what the model folder holds).
     * `text`: a text file that is not JSON (a Jinja template): only a web page is refused.
     * @param {string} name @param {boolean} optional @param {boolean} [text]
     */
    const readJson = async (name, optional, text = false) => {
      const f = await src.open(name);
      if (!f) return null;
      const phase = f.fromCache ? 'cache' : 'download';
      const bytes = await readAll(f.stream, f.size, `${place}${name}`, signal);
      const html = text ? isHtmlPage(f.contentType, bytes) : isHtml(f.contentType, bytes.subarray(0, 64));
      if (html || (optional && !text && !parsesAsJson(bytes))) {
        if (html) htmlAt ||= `${place}${name}`;
        await src.absent(name);
        return null;
      }
      tally.set(name, bytes.byteLength, bytes.byteLength);
      tally.event(name, phase);
      return bytes;
    };
    /**
     * A safetensors file, or null when absent (or an HTML page stands in for it).
     * @param {string} name
     */
    const openWeights = async (name) => {
      const f = await src.open(name);
      if (!f) return null;
      let head;
      let stream;
      try {
        ({ head, stream } = await peek(f.stream));
      } catch (e) {
        throw readError(e, `${place}${name}`, 0, signal);
      }
      if (isHtml(f.contentType, head)) {
        stream.cancel().catch(() => {});
        htmlAt ||= `${place}${name}`;
        await src.absent(name);
        return null;
      }
      return { ...f, stream };
    };

    try {
      await src.init();
      const config = await readJson('config.json', false);
      if (!config) throw missing('config.json');
      const tokenizer = await readJson('tokenizer.json', false);
      if (!tokenizer) throw missing('tokenizer.json');
      const generation = await readJson('generation_config.json', true);
      let procName = null;
      let proc = null;
      for (const name of PROCESSOR_FILES) {
        proc = await readJson(name, true);
        if (proc) {
          procName = name;
          break;
        }
      }
      if (!proc || !procName) throw missing('preprocessor_config.json');
      const loader = await this.guard(() => this.engine.beginLoad(src.place, config, proc, procName, generation ?? undefined, tokenizer, dtype));
      if (maxHostBytes !== undefined) await this.guard(() => loader.setHostBound(maxHostBytes));
      // The configs parsed: their cache entries may be kept.
      for (const name of ['config.json', 'tokenizer.json', procName, ...(generation ? ['generation_config.json'] : [])]) await src.commit(name);
      // Chat models (SmolVLM): the chat template's files (the engine takes the first that
      // has one, and the special tokens of tokenizer_config.json; the processor config
      // already read is not fetched twice). Other models fetch none of these, so their
      // loads make no extra requests.
      if (this.safe(() => loader.isChatModel())) {
        /** @type {Record<string, Uint8Array | null>} */
        const got = { [procName]: proc };
        for (const name of CHAT_TEMPLATE_FILES) {
          if (name in got) continue;
          got[name] = await readJson(name, true, name.endsWith('.jinja'));
          if (got[name]) await src.commit(name);
        }
        const opt = (name) => got[name] ?? undefined;
        await this.guard(() =>
          loader.setChatTemplate(opt('chat_template.jinja'), opt('chat_template.json'), opt('processor_config.json'), opt('tokenizer_config.json')),
        );
      }

      // A single file first; the index only when there is none (no 404 for most models).
      let first = await openWeights(SINGLE_FILE);
      if (!first) {
        const index = await readJson(INDEX_FILE, true);
        if (!index) throw missing(SINGLE_FILE);
        await this.guard(() => loader.setIndex(index, INDEX_FILE));
        await src.commit(INDEX_FILE);
        try {
          const total = Number(JSON.parse(new TextDecoder().decode(index))?.metadata?.total_size);
          if (Number.isSafeInteger(total) && total > 0) tally.pendingData = total;
        } catch {
          /* the loader parsed it; a missing total only makes the progress total grow later */
        }
      }
      const files = loader.weightFiles();
      for (const name of files) {
        const f = name === SINGLE_FILE && first ? first : await openWeights(name);
        first = null;
        if (!f) throw missing(name);
        await this.streamWeights(loader, src, f, name, { place, signal, tally });
      }
      // Read before finish(): the loader is consumed by it.
      const loaderPeakBytes = this.safe(() => loader.peakHostBytes());
      const model = await this.guard(() => loader.finish());
      this.model = model;
      await src.finish();
      this.modelInfo = JSON.parse(model.infoJson());
      tally.ready();
      const memory = {
        wasmBytes: this.wasmMemory ? this.wasmMemory.buffer.byteLength : null,
        loaderPeakBytes,
        hostBoundBytes: maxHostBytes ?? DEFAULT_HOST_BYTES,
      };
      return { info: this.modelInfo, adapter: this.adapter, memory };
    } catch (e) {
      await src.discardAll().catch(() => {});
      throw toPinholeError(e);
    }
  }

  /**
   * Streams one safetensors file into the loader: tensors are converted and uploaded as their
   * bytes arrive.
   */
  async streamWeights(loader, src, f, name, { place, signal, tally }) {
    let size = f.size ?? null;
    tally.pendingData = Math.max(0, tally.pendingData - (size ?? 0));
    loader.beginFile(name, f.size);
    const sniffer = new HeaderSniffer();
    const reader = f.stream.getReader();
    let loaded = 0;
    let lastReport = 0;
    const phase = f.fromCache ? 'cache' : 'download';
    tally.set(name, 0, size);
    tally.event(name, phase);
    try {
      for (;;) {
        if (signal?.aborted) throw abortError();
        let r;
        try {
          r = await reader.read();
        } catch (e) {
          throw readError(e, `${place}${name}`, loaded, signal);
        }
        if (r.done) break;
        if (size === null) {
          const s = sniffer.push(r.value);
          if (s !== null) {
            size = s;
            tally.pendingData = Math.max(0, tally.pendingData - s);
          }
        }
        // The chunk's bytes are converted and written to the GPU now; its file offset lets
        // the engine refuse a duplicate or missing chunk.
        const at = loaded;
        await this.guard(() => loader.push(r.value, at));
        loaded += r.value.byteLength;
        tally.set(name, loaded, size);
        const now = performance.now();
        if (now - lastReport > 50) {
          lastReport = now;
          tally.event(name, phase);
        }
      }
    } catch (e) {
      reader.cancel().catch(() => {});
      throw e;
    }
    await this.guard(() => loader.endFile());
    await src.commit(name);
    // The whole file arrived and the loader checked it against its header: this is its size.
    tally.set(name, loaded, loaded);
    tally.event(name, phase);
  }

  /** After a panic: a fresh instance with the same model (from the cache or the same files). */
  async revive() {
    if (this.model) return;
    if (!this.loadArgs) throw new PinholeError('disposed', 'no model is loaded; call Pinhole.load() first');
    await this.loadNow(this.loadArgs.source, this.loadArgs.opts);
  }

  /**
   * Turns an image into the model's pixels. Encoded Blobs go to Rust's decoder (the same as the
   * CLI's); ImageBitmap / ImageData become RGBA.
   */
  async pixels(image) {
    if (typeof Blob !== 'undefined' && image instanceof Blob) {
      const bytes = new Uint8Array(await image.arrayBuffer());
      try {
        return await this.guard(() => this.model.pixelsFromEncoded(bytes, /** @type {File} */ (image).name || image.type || 'image'));
      } catch (e) {
        // Formats the Rust decoder does not read (AVIF, BMP, SVG...) are decoded by the browser.
        const mine = /image\/(png|jpeg|webp|gif)/.test(image.type);
        if (e.code !== 'bad-image' || mine || typeof createImageBitmap === 'undefined') throw e;
        let bmp;
        try {
          bmp = await createImageBitmap(image, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
        } catch {
          throw e;
        }
        return this.pixels(bmp);
      }
    }
    let data;
    let w;
    let h;
    if (typeof ImageData !== 'undefined' && image instanceof ImageData) {
      ({ data, width: w, height: h } = image);
    } else if (typeof ImageBitmap !== 'undefined' && image instanceof ImageBitmap) {
      w = image.width;
      h = image.height;
      if (!w || !h) throw new PinholeError('bad-image', `the image is ${w}x${h}: it has no pixels`);
      const canvas = new OffscreenCanvas(w, h);
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(image, 0, 0);
      data = ctx.getImageData(0, 0, w, h).data;
      image.close?.();
    } else if (image && typeof image === 'object' && image.data && image.width && image.height) {
      ({ data, width: w, height: h } = image); // {data, width, height} RGBA
    } else {
      throw new PinholeError('bad-image', 'unsupported image: give an HTMLImageElement, canvas, ImageBitmap, ImageData, VideoFrame, video element or an image Blob/File');
    }
    const rgba = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return this.guard(() => this.model.pixelsFromRgba(rgba, w, h));
  }

  /**
   * Generates. `onToken({text, tokenId})` receives each new piece of text. `prompt` undefined:
   * the model's default ('caption en'; 'Describe this image.' for chat models). `messages`
   * (chat models): the conversation as JSON-able `[{role, content}]`, rendered by the folder's
   * chat template; `rawPrompt`: a chat model's prompt used as it is (it holds `<image>`).
   * @param {any} image
   * @param {{prompt?: string, messages?: unknown[], rawPrompt?: boolean, maxNewTokens?: number, signal?: AbortSignal, onToken?: (piece: {text: string, tokenId: number}) => void}} [opts]
   * @returns {Promise<{text: string, tokenIds: number[], boxes: object[], timings: object, stoppedOnEos: boolean, promptTokens: number}>}
   */
  generate(image, { prompt, messages, rawPrompt = false, maxNewTokens = 32, signal, onToken } = {}) {
    return this.serial(async () => {
      if (signal?.aborted) throw abortError();
      if (prompt !== undefined && typeof prompt !== 'string') throw new PinholeError('bad-request', 'prompt must be a string');
      const messagesJson = messages === undefined ? undefined : messagesToJson(messages, prompt);
      const n = Number(maxNewTokens);
      if (!Number.isInteger(n) || n < 1 || n > 1 << 20) throw new PinholeError('bad-request', `maxNewTokens must be a positive integer, got ${maxNewTokens}`);
      this.recoverLostDevice();
      if (!this.model) await this.revive();
      const px = await this.pixels(image);
      let prev = '';
      const cb = (id, textSoFar) => {
        if (signal?.aborted) return false;
        const piece = textSoFar.startsWith(prev) ? textSoFar.slice(prev.length) : textSoFar;
        prev = textSoFar;
        try {
          onToken?.({ text: piece, tokenId: id });
        } catch {
          /* a throwing consumer must not break generation */
        }
        return true;
      };
      try {
        const json = await this.guard(() => this.model.generate(px, prompt, n, cb, messagesJson, Boolean(rawPrompt)));
        const out = JSON.parse(json);
        if (signal?.aborted) throw abortError();
        return { text: out.text, tokenIds: out.tokenIds, boxes: out.boxes, timings: out.timings, stoppedOnEos: out.stoppedOnEos, promptTokens: out.promptTokens };
      } finally {
        this.safe(() => px.free());
      }
    });
  }

  /** Runs the shared kernel test cases under this browser's WebGPU; resolves to the report. */
  kernelTests(filter) {
    return this.serial(async () => {
      await this.ensureInstance();
      if (typeof this.engine.runKernelTests !== 'function') {
        throw new PinholeError('bad-request', 'this build of the engine has no kernel test cases (the published package leaves them out): build it with `bash tools/build-web.sh --kernel-tests` and serve pkg-kernel-tests/ as pkg/');
      }
      return JSON.parse(await this.guard(() => this.engine.runKernelTests(filter ?? undefined)));
    });
  }

  /** Test hook: panics inside Rust. */
  debugPanic() {
    return this.serial(async () => {
      await this.ensureInstance();
      await this.guard(() => this.glue.debugPanic('requested by a test'));
    });
  }

  /**
   * Test hook: GPUDevice.destroy() on the engine's device, now (not queued behind the call in
   * flight, which is what it is meant to interrupt).
   */
  debugLoseDevice() {
    if (!this.engine) throw new PinholeError('bad-request', 'no device is open');
    this.engine.debugLoseDevice();
  }

  info() {
    return { info: this.modelInfo, adapter: this.adapter };
  }

  dispose() {
    return this.serial(async () => {
      if (this.model) this.safe(() => this.model.dispose());
      this.model = null;
      this.loadArgs = null;
    });
  }
}
