// The engine side of the package: it owns the wasm instance (pkg/, built from
// crates/pinhole-web), streams model files into it and runs generation. It runs inside the
// module worker (js/worker.js) by default, or on the page with `worker: false`.
//
// Panics: a Rust panic aborts the wasm instance. The panic hook tells us first (onPanic), the
// call in flight rejects with code 'internal', the instance is dropped, and the next call
// instantiates a fresh one (a new import of the glue module, so it has its own memory) and
// reloads the model from where it came from (the cache, or the same files).

import { PinholeError, toPinholeError, abortError, NO_WEBGPU_MESSAGE, NO_ADAPTER_MESSAGE } from './errors.js';
import { UrlSource, LocalSource, isLocalSource } from './cache.js';

const GLUE_URL = new URL('../pkg/pinhole_web.js', import.meta.url).href;
const WASM_URL = new URL('../pkg/pinhole_web_bg.wasm', import.meta.url).href;

let instances = 0;

/** Loads a fresh wasm instance. */
async function instantiate(onPanic) {
  instances += 1;
  // A different URL is a different module record: its own `wasm` and memory.
  const url = instances === 1 ? GLUE_URL : `${GLUE_URL}?instance=${instances}`;
  const glue = await import(/* @vite-ignore */ url);
  await glue.default({ module_or_path: WASM_URL });
  glue.onPanic?.(onPanic);
  return glue;
}

const SMALL_FILES = ['config.json', 'tokenizer.json', 'generation_config.json'];
const PROCESSOR_FILES = ['preprocessor_config.json', 'processor_config.json'];
const INDEX_FILE = 'model.safetensors.index.json';

async function readAll(stream, size, name, place, signal) {
  const reader = stream.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    if (signal?.aborted) {
      reader.cancel().catch(() => {});
      throw abortError();
    }
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.byteLength;
  }
  if (size !== undefined && n !== size) {
    throw new PinholeError('network', `${place}${name}: ${n} of ${size} bytes arrived; the download was cut: load again`);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

export class Engine {
  constructor() {
    this.glue = null;
    this.engine = null;
    this.model = null;
    this.modelInfo = null;
    this.adapter = null;
    this.loadArgs = null; // how to reload after a panic
    this.panic = null; // {promise, reject} of the current instance
    this.queue = Promise.resolve();
  }

  // Runs `fn` after every earlier call (one GPU job at a time, in order).
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
      throw toPinholeError(e);
    }
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
    this.engine = null;
    this.model = null;
    this.dead = false;
  }

  async ensureInstance(maxBindingBytes) {
    if (this.engine) return;
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) throw new PinholeError('no-webgpu', NO_WEBGPU_MESSAGE);
    this.resetPanic();
    this.glue = await instantiate((m) => this.onPanic(m));
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
   * @param {{dtype?: string, maxBindingBytes?: number, signal?: AbortSignal, onProgress?: Function}} opts
   */
  load(source, opts = {}) {
    return this.serial(() => this.loadNow(source, opts));
  }

  async loadNow(source, { dtype = 'auto', maxBindingBytes, signal, onProgress } = {}) {
    if (signal?.aborted) throw abortError();
    await this.ensureInstance(maxBindingBytes);
    if (this.model) {
      this.safe(() => this.model.dispose());
      this.model = null;
    }
    const src = isLocalSource(source) ? new LocalSource(source) : new UrlSource(source, { signal });
    const progress = (e) => {
      try {
        onProgress?.(e);
      } catch {
        /* a throwing progress callback must not break the load */
      }
    };
    const t0 = performance.now();
    let totalLoaded = 0;
    let totalBytes = 0;
    try {
      await src.init();
      const small = {};
      const fetchSmall = async (name) => {
        const f = await src.open(name);
        if (!f) return null;
        if (f.size !== undefined) totalBytes += f.size;
        const bytes = await readAll(f.stream, f.size, name, `${src.place}${src.place.endsWith('/') ? '' : '/'}`, signal);
        totalLoaded += bytes.byteLength;
        if (f.size === undefined) totalBytes += bytes.byteLength;
        progress({ file: name, loaded: bytes.byteLength, total: bytes.byteLength, phase: f.fromCache ? 'cache' : 'download', totalLoaded, totalBytes });
        return bytes;
      };
      for (const name of SMALL_FILES) small[name] = await fetchSmall(name);
      let procName = null;
      for (const name of PROCESSOR_FILES) {
        small[name] = await fetchSmall(name);
        if (small[name]) {
          procName = name;
          break;
        }
      }
      const missing = (name) =>
        new PinholeError('bad-model', `${src.place}: ${name} is missing; a model folder in Hugging Face layout has config.json, tokenizer.json, preprocessor_config.json and model.safetensors (or a sharded index)`);
      if (!small['config.json']) throw missing('config.json');
      if (!small['tokenizer.json']) throw missing('tokenizer.json');
      if (!procName) throw missing('preprocessor_config.json');
      const loader = await this.guard(() =>
        this.engine.beginLoad(src.place, small['config.json'], small[procName], procName, small['generation_config.json'] ?? undefined, small['tokenizer.json'], dtype),
      );
      for (const name of [...SMALL_FILES, procName]) if (small[name]) await src.commit(name);

      const index = await fetchSmall(INDEX_FILE);
      if (index) {
        await this.guard(() => loader.setIndex(index, INDEX_FILE));
        await src.commit(INDEX_FILE);
      }
      const files = loader.weightFiles();
      for (const name of files) {
        const f = await src.open(name);
        if (!f) throw missing(name);
        if (f.size !== undefined) totalBytes += f.size;
        loader.beginFile(name, f.size);
        const reader = f.stream.getReader();
        let loaded = 0;
        let lastReport = 0;
        const phase = f.fromCache ? 'cache' : 'download';
        progress({ file: name, loaded: 0, total: f.size ?? null, phase, totalLoaded, totalBytes });
        try {
          for (;;) {
            if (signal?.aborted) throw abortError();
            let r;
            try {
              r = await reader.read();
            } catch (e) {
              if (signal?.aborted || e?.name === 'AbortError') throw abortError();
              throw new PinholeError('network', `${src.place}${name}: the download failed after ${loaded} bytes (${e?.message ?? e}); load again`, { cause: e });
            }
            if (r.done) break;
            // Tensors completed by this chunk are converted and uploaded now.
            await this.guard(() => loader.push(r.value));
            loaded += r.value.byteLength;
            totalLoaded += r.value.byteLength;
            const now = performance.now();
            if (now - lastReport > 50) {
              lastReport = now;
              progress({ file: name, loaded, total: f.size ?? null, phase, totalLoaded, totalBytes });
            }
          }
        } catch (e) {
          reader.cancel().catch(() => {});
          throw e;
        }
        await this.guard(() => loader.endFile());
        await src.commit(name);
        progress({ file: name, loaded, total: f.size ?? loaded, phase, totalLoaded, totalBytes });
      }
      this.model = await this.guard(() => loader.finish());
      await src.finish();
      this.modelInfo = JSON.parse(this.model.infoJson());
      this.loadArgs = { source, opts: { dtype, maxBindingBytes } };
      const loadMs = performance.now() - t0;
      progress({ file: null, loaded: totalLoaded, total: totalBytes, phase: 'ready', totalLoaded, totalBytes });
      return { info: this.modelInfo, adapter: this.adapter, loadMs };
    } catch (e) {
      await src.discardAll().catch(() => {});
      throw toPinholeError(e);
    }
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
        return await this.guard(() => this.model.pixelsFromEncoded(bytes, image.name || image.type || 'image'));
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
   * Generates. `onToken({text, tokenId})` receives each new piece of text.
   * @returns {Promise<{text: string, tokenIds: number[], boxes: object[], timings: object}>}
   */
  generate(image, { prompt = 'caption en', maxNewTokens = 32, signal, onToken } = {}) {
    return this.serial(async () => {
      if (signal?.aborted) throw abortError();
      if (typeof prompt !== 'string') throw new PinholeError('bad-request', 'prompt must be a string');
      const n = Number(maxNewTokens);
      if (!Number.isInteger(n) || n < 1 || n > 1 << 20) throw new PinholeError('bad-request', `maxNewTokens must be a positive integer, got ${maxNewTokens}`);
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
        const json = await this.guard(() => this.model.generate(px, prompt, n, cb));
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
