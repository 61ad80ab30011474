// pinhole demo: the page logic. Everything model-related goes through the package API
// (js/index.js: Pinhole.load / generate / stream / support / cache); this file only wires the
// UI: model picker, image sources (file, drop, paste, camera), prompt, streamed output, boxes.
//
// The package is imported dynamically so that a missing build (pkg/ absent) or a browser that
// cannot load it still gets a readable error on the page instead of a blank screen.

import { parseBoxes, normaliseBox } from './boxes.js';

const $ = (id) => document.getElementById(id);
const ui = {
  error: $('error'),
  load: $('load'),
  cancelLoad: $('cancel-load'),
  progress: $('load-progress'),
  loadStatus: $('load-status'),
  modelUrl: $('model-url'),
  modelUrlRow: $('model-url-row'),
  modelFolder: $('model-folder'),
  modelFolderRow: $('model-folder-row'),
  adapter: $('stat-adapter'),
  f16: $('stat-f16'),
  file: $('file'),
  camera: $('camera'),
  pause: $('pause'),
  switchCamera: $('switch-camera'),
  drop: $('drop'),
  dropHint: $('drop-hint'),
  stage: $('stage'),
  video: $('video'),
  overlay: $('overlay'),
  form: $('run-form'),
  prompt: $('prompt'),
  maxTokens: $('max-tokens'),
  run: $('run'),
  stop: $('stop'),
  output: $('output'),
  boxes: $('boxes'),
  encode: $('stat-encode'),
  prefill: $('stat-prefill'),
  tps: $('stat-tps'),
  state: $('state'),
  clearCache: $('clear-cache'),
};

/** The default model sits next to the page (tools/serve.mjs maps it; copy it there on a static host). */
const DEFAULT_MODEL_URL = new URL('model/', location.href).href;

const app = {
  Pinhole: null, // the package's class, once imported
  vlm: null, // the loaded model
  loadAbort: null,
  runAbort: null,
  running: false,
  image: null, // { source: Blob | ImageBitmap, width, height, name } of the file/drop/paste image
  rerun: false, // an image or prompt changed while a run was going: run again with the newest
  camera: { stream: null, on: false, paused: false, deviceId: null, wake: null },
};

// ---------------------------------------------------------------------------------------------
// Errors: one place turns a PinholeError code (or any failure) into advice for a person.

const WEBGPU_ADVICE =
  'WebGPU is not available here, and pinhole runs the model on your GPU through WebGPU.\n' +
  'Use a current Chrome or Edge (version 113 or later on Windows, macOS and ChromeOS; 121 or later on Android), ' +
  'Safari 26 or later, or Firefox 141 or later on Windows. On Linux, Chrome needs WebGPU enabled: ' +
  'open chrome://flags/#enable-unsafe-webgpu, set it to Enabled and restart (or start it with --enable-unsafe-webgpu). ' +
  'If your browser should support WebGPU, check that hardware acceleration is on in its settings.';

function explain(err) {
  const code = err && err.code;
  const msg = (err && err.message) || String(err);
  switch (code) {
    case 'no-webgpu':
      return `${WEBGPU_ADVICE}\n(${msg})`;
    case 'bad-model':
      return `This model could not be loaded: ${msg}\nA model folder needs config.json, tokenizer.json and model.safetensors (or a sharded index) in Hugging Face layout, for a PaliGemma-class model.`;
    case 'bad-image':
      return `This image could not be read: ${msg}\nTry a PNG, JPEG, GIF or WebP file.`;
    case 'network':
      return `A download failed: ${msg}\nCheck the URL (it should point at the model folder, ending in /) and that the server allows cross-origin requests (CORS).`;
    case 'prompt-too-long':
      return `The prompt is too long for this model: ${msg}\nShorten it or lower "Max tokens".`;
    case 'device-lost':
      return `The GPU device was lost (the browser or driver reset it): ${msg}\nLoad the model again.`;
    case 'internal':
      return `Something went wrong inside pinhole: ${msg}\nTry again; if it keeps happening, reload the page.`;
    default:
      return msg;
  }
}

function showError(err) {
  ui.error.textContent = explain(err);
  ui.error.hidden = false;
  if (err && err.code) ui.error.dataset.code = err.code;
  else delete ui.error.dataset.code;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
  delete ui.error.dataset.code;
}

const isAbort = (e) => e && (e.code === 'aborted' || e.name === 'AbortError');

function setState(state, detail = state) {
  ui.state.dataset.state = state;
  ui.state.textContent = detail;
}

// ---------------------------------------------------------------------------------------------
// Device and model.

async function showSupport() {
  let s;
  try {
    s = await app.Pinhole.support();
  } catch (e) {
    s = { webgpu: false, error: e };
  }
  if (!s || !s.webgpu) {
    ui.adapter.textContent = 'none (no WebGPU)';
    ui.f16.textContent = '–';
    app.noWebgpuReason = (s && (s.message || (s.error && s.error.message))) || 'navigator.gpu is missing or gave no adapter';
    return false;
  }
  const a = s.adapter || {};
  const name = [a.vendor, a.architecture, a.description].filter(Boolean).join(' ') || 'unnamed adapter';
  ui.adapter.textContent = s.fallbackAdapter ? `${name} (software fallback, not a GPU: slow)` : name;
  ui.f16.textContent = s.f16 ? 'shader-f16 available' : 'no shader-f16 (f16 weights are unpacked to f32)';
  app.support = s;
  return true;
}

/**
 * Prompt presets per kind of model: PaliGemma's task prefixes, or questions for chat models
 * (SmolVLM), which get the prompt as one user turn of a conversation (`messages`).
 */
const PRESETS = {
  task: [
    ['Caption', 'caption en'],
    ['Question', 'answer en how many circles?'],
    ['Detect', 'detect circle'],
  ],
  chat: [
    ['Describe', 'Describe this image.'],
    ['Question', 'How many circles are there?'],
    ['Colours', 'What colours are the shapes?'],
  ],
};

/** Switches the presets (and a preset prompt in the box) to the loaded model's kind. */
function showPresets(vlm) {
  const kind = vlm.info?.chat ? 'chat' : 'task';
  const other = kind === 'chat' ? PRESETS.task : PRESETS.chat;
  const buttons = [...document.querySelectorAll('.preset')];
  buttons.forEach((b, i) => {
    const p = PRESETS[kind][i];
    if (!p) return;
    b.textContent = p[0];
    b.dataset.prompt = p[1];
  });
  const current = ui.prompt.value.trim();
  if (!current || other.some(([, text]) => text === current)) ui.prompt.value = PRESETS[kind][0][1];
}

/** Which weights the loaded model uses (f16 weights are unpacked in the shaders when the adapter has no shader-f16). */
function showModelFacts(vlm) {
  const i = vlm.info || {};
  const base = app.support && app.support.f16 ? 'shader-f16 available' : 'no shader-f16';
  const w = i.weightDtype ? `; weights ${i.weightDtype}${Number.isFinite(i.weightBytes) ? ` (${formatBytes(i.weightBytes)} on the GPU)` : ''}` : '';
  ui.f16.textContent = base + w;
}

function selectedSource() {
  const kind = document.querySelector('input[name=model-source]:checked').value;
  if (kind === 'url') {
    const raw = ui.modelUrl.value.trim();
    if (!raw) throw Object.assign(new Error('enter the URL of a model folder first'), { code: 'bad-model' });
    let url;
    try {
      url = new URL(raw, location.href);
    } catch {
      throw Object.assign(new Error(`"${raw}" is not a URL`), { code: 'bad-model' });
    }
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    return { source: url.href, name: url.href };
  }
  if (kind === 'folder') {
    const files = ui.modelFolder.files;
    if (!files || files.length === 0) throw Object.assign(new Error('choose a model folder first'), { code: 'bad-model' });
    const top = (files[0].webkitRelativePath || files[0].name).split('/')[0];
    return { source: files, name: `folder "${top}" (${files.length} files)` };
  }
  // The 4-bit copy of the shapes model that ships inside the npm package: `Pinhole.load()`.
  if (kind === 'package') return { source: undefined, name: 'the model in the npm package (4-bit)' };
  return { source: DEFAULT_MODEL_URL, name: 'bundled default model' };
}

function formatBytes(n) {
  if (!Number.isFinite(n)) return '?';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

async function loadModel() {
  clearError();
  let picked;
  try {
    picked = selectedSource();
  } catch (e) {
    showError(e);
    return;
  }
  app.loadAbort?.abort();
  const ctl = new AbortController();
  app.loadAbort = ctl;
  stopRun();
  if (app.vlm) {
    try {
      app.vlm.dispose();
    } catch {
      /* already gone */
    }
    app.vlm = null;
  }
  updateButtons();
  ui.load.disabled = true;
  ui.cancelLoad.hidden = false;
  ui.progress.hidden = false;
  ui.progress.removeAttribute('value');
  ui.loadStatus.textContent = `Loading ${picked.name}…`;
  setState('loading', 'loading model');
  const t0 = performance.now();
  try {
    const vlm = await app.Pinhole.load(picked.source, {
      signal: ctl.signal,
      onProgress: (p) => {
        if (app.loadAbort !== ctl || !p) return;
        const loaded = p.totalLoaded ?? p.loaded;
        const total = p.totalBytes ?? p.total;
        if (Number.isFinite(loaded) && Number.isFinite(total) && total > 0) {
          ui.progress.max = total;
          ui.progress.value = Math.min(loaded, total);
        }
        const what = p.file ? `${p.phase || 'loading'} ${p.file}` : p.phase || 'loading';
        ui.loadStatus.textContent = `${what}: ${formatBytes(p.loaded)}${p.total ? ` of ${formatBytes(p.total)}` : ''}`;
      },
    });
    if (app.loadAbort !== ctl) {
      vlm.dispose();
      return;
    }
    app.vlm = vlm;
    showModelFacts(vlm);
    showPresets(vlm);
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    ui.loadStatus.textContent = `Loaded ${picked.name} in ${s} s.`;
    ui.loadStatus.dataset.loaded = 'true';
    setState('ready', 'ready');
    updateButtons();
    if (app.image && !app.camera.on) runOnImage();
  } catch (e) {
    if (app.loadAbort !== ctl) return;
    delete ui.loadStatus.dataset.loaded;
    if (isAbort(e)) {
      ui.loadStatus.textContent = 'Loading cancelled.';
      setState('idle');
    } else {
      ui.loadStatus.textContent = 'Not loaded.';
      showError(e);
      setState('error', 'error');
    }
  } finally {
    if (app.loadAbort === ctl) {
      app.loadAbort = null;
      ui.load.disabled = false;
      ui.cancelLoad.hidden = true;
      ui.progress.hidden = true;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Running the model: streamed text, then timings and boxes.

function updateButtons() {
  ui.run.disabled = !app.vlm || app.running || (!app.image && !app.camera.on);
  ui.stop.disabled = !app.running;
}

function stopRun() {
  app.runAbort?.abort();
}

/**
 * Runs the prompt on `image` and streams the text into the output. Returns true when it finished
 * (not aborted, no error). `shown` is what the image area displays, for the box overlay.
 */
async function runModel(image, shown) {
  const chat = Boolean(app.vlm.info?.chat);
  const prompt = ui.prompt.value.trim() || (chat ? 'Describe this image.' : 'caption en');
  // Chat models: the question as one user turn with the image first, the form
  // transformers' apply_chat_template takes (the package renders the model's template).
  const request = chat ? { messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: prompt }] }] } : { prompt };
  const maxNewTokens = Math.max(1, Math.min(512, Number(ui.maxTokens.value) || 32));
  const ctl = new AbortController();
  app.runAbort = ctl;
  app.running = true;
  updateButtons();
  setState('running', 'running');
  clearError();
  let text = '';
  const started = performance.now();
  let firstTokenAt = 0;
  let tokens = 0;
  let result = null;
  try {
    const stream = app.vlm.stream(image, { ...request, maxNewTokens, signal: ctl.signal });
    const it = stream[Symbol.asyncIterator]();
    for (;;) {
      const { value, done } = await it.next();
      if (done) {
        // The stream's return value (when the package gives one) is the full result.
        if (value && typeof value === 'object') result = value;
        break;
      }
      if (value.timings || value.done) result = value;
      if (typeof value.text === 'string' && !value.done) {
        text += value.text;
        tokens++;
        if (!firstTokenAt) firstTokenAt = performance.now();
      }
      ui.output.textContent = text;
    }
    result = result || stream.result || null;
    if (result && typeof result.text === 'string') text = result.text;
    ui.output.textContent = text;
    const timings = (result && result.timings) || {};
    showTimings(timings, { started, firstTokenAt, tokens });
    const boxes = (result && Array.isArray(result.boxes) && result.boxes.length ? result.boxes : parseBoxes(text)).map(normaliseBox).filter(Boolean);
    drawBoxes(boxes, shown);
    setState('done', 'done');
    return true;
  } catch (e) {
    if (isAbort(e)) {
      setState('stopped', 'stopped');
    } else {
      showError(e);
      setState('error', 'error');
    }
    return false;
  } finally {
    if (app.runAbort === ctl) app.runAbort = null;
    app.running = false;
    updateButtons();
  }
}

const ms = (v) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} ms` : '–');

function showTimings(t, wall) {
  ui.encode.textContent = ms(t.imageEncodeMs);
  ui.prefill.textContent = ms(t.prefillMs);
  let tps = t.tokensPerSecond;
  if (!Number.isFinite(tps) && wall.tokens > 1 && wall.firstTokenAt) {
    tps = ((wall.tokens - 1) * 1000) / (performance.now() - wall.firstTokenAt);
  }
  ui.tps.textContent = Number.isFinite(tps) ? `${tps.toFixed(1)} tokens/s` : '–';
}

async function runOnImage() {
  if (!app.vlm || !app.image) return;
  if (app.running) {
    // Newest wins: stop the current run; the loop below picks up the latest image and prompt.
    app.rerun = true;
    stopRun();
    return;
  }
  do {
    app.rerun = false;
    const img = app.image;
    // Blobs go to the package as they are: their bytes are decoded by the same Rust code as the
    // native CLI, so captions match it exactly.
    await runModel(img.source, { width: img.width, height: img.height });
  } while (app.rerun && app.image && !app.camera.on);
}

// ---------------------------------------------------------------------------------------------
// Image display and the detection overlay.

function showOnStage(bitmap) {
  const c = ui.stage;
  c.width = bitmap.width;
  c.height = bitmap.height;
  c.getContext('2d').drawImage(bitmap, 0, 0);
  c.style.imageRendering = Math.max(bitmap.width, bitmap.height) < 256 ? 'pixelated' : 'auto';
  c.hidden = false;
  ui.video.hidden = true;
  ui.dropHint.hidden = true;
  clearOverlay(bitmap.width, bitmap.height);
}

/** The overlay has the displayed image's aspect ratio but ~1024 px on its long side, so lines stay crisp. */
function clearOverlay(width, height) {
  const k = 1024 / Math.max(width, height, 1);
  ui.overlay.width = Math.max(1, Math.round(width * k));
  ui.overlay.height = Math.max(1, Math.round(height * k));
  ui.overlay.getContext('2d').clearRect(0, 0, ui.overlay.width, ui.overlay.height);
  ui.boxes.replaceChildren();
}

function drawBoxes(boxes, shown) {
  clearOverlay(shown.width, shown.height);
  const ctx = ui.overlay.getContext('2d');
  const W = ui.overlay.width;
  const H = ui.overlay.height;
  ctx.lineWidth = Math.max(3, W / 200);
  ctx.font = `${Math.round(W / 28)}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  for (const b of boxes) {
    const x = b.xMin * W;
    const y = b.yMin * H;
    const w = (b.xMax - b.xMin) * W;
    const h = (b.yMax - b.yMin) * H;
    ctx.strokeStyle = '#ffd166';
    ctx.strokeRect(x, y, w, h);
    if (b.label) {
      const pad = 4;
      const tw = ctx.measureText(b.label).width + 2 * pad;
      const th = Math.round(W / 28) + 2 * pad;
      const ty = y >= th ? y - th : y;
      ctx.fillStyle = '#ffd166';
      ctx.fillRect(x, ty, tw, th);
      ctx.fillStyle = '#1d2430';
      ctx.fillText(b.label, x + pad, ty + pad);
    }
    const li = document.createElement('li');
    const pct = (v) => `${Math.round(v * 100)}%`;
    li.textContent = `${b.label || 'box'}: x ${pct(b.xMin)}–${pct(b.xMax)}, y ${pct(b.yMin)}–${pct(b.yMax)}`;
    ui.boxes.append(li);
  }
  ui.overlay.dataset.boxes = String(boxes.length);
}

async function setImage(blob, name) {
  clearError();
  if (!blob || (blob.type && !blob.type.startsWith('image/'))) {
    showError(Object.assign(new Error(`"${name || 'this file'}" is not an image (${blob && blob.type ? blob.type : 'unknown type'})`), { code: 'bad-image' }));
    return;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    showError(Object.assign(new Error(`the browser cannot decode "${name || 'this file'}"`), { code: 'bad-image' }));
    return;
  }
  if (app.camera.on) stopCamera();
  showOnStage(bitmap);
  app.image = { source: blob, width: bitmap.width, height: bitmap.height, name };
  bitmap.close();
  ui.drop.setAttribute('aria-label', `Image preview: ${name || 'pasted image'}. Drop or paste another image here.`);
  updateButtons();
  runOnImage();
}

// ---------------------------------------------------------------------------------------------
// Camera: caption the newest frame whenever the previous caption finishes (never a queue).

async function startCamera(deviceId = null) {
  clearError();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError(new Error('This browser gives no camera access here (the page must be served over https or from localhost).'));
    return;
  }
  stopTracks();
  try {
    const video = deviceId ? { deviceId: { exact: deviceId } } : { facingMode: 'environment' };
    app.camera.stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
  } catch (e) {
    const why = e && e.name === 'NotAllowedError' ? 'permission was denied; allow camera access in the address bar and try again' : e && e.name === 'NotFoundError' ? 'no camera was found' : (e && e.message) || String(e);
    showError(new Error(`The camera could not be started: ${why}.`));
    setCameraUi(false);
    return;
  }
  const track = app.camera.stream.getVideoTracks()[0];
  app.camera.deviceId = track && track.getSettings ? track.getSettings().deviceId || deviceId : deviceId;
  ui.video.srcObject = app.camera.stream;
  ui.video.hidden = false;
  ui.stage.hidden = true;
  ui.dropHint.hidden = true;
  try {
    await ui.video.play();
  } catch {
    /* autoplay of a muted inline video is allowed; play() can still reject when interrupted */
  }
  const wasOn = app.camera.on;
  app.camera.on = true;
  setCameraUi(true);
  const cams = await listCameras();
  ui.switchCamera.disabled = cams.length < 2;
  ui.switchCamera.title = cams.length < 2 ? 'Only one camera was found' : '';
  if (!wasOn) cameraLoop();
}

async function listCameras() {
  try {
    return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  } catch {
    return [];
  }
}

function stopTracks() {
  if (app.camera.stream) for (const t of app.camera.stream.getTracks()) t.stop();
  app.camera.stream = null;
}

function stopCamera() {
  app.camera.on = false;
  app.camera.paused = false;
  stopTracks();
  ui.video.srcObject = null;
  ui.video.hidden = true;
  ui.stage.hidden = false;
  app.camera.wake?.();
  setCameraUi(false);
  stopRun();
}

function setCameraUi(on) {
  ui.camera.textContent = on ? 'Stop camera' : 'Start camera';
  ui.camera.setAttribute('aria-pressed', String(on));
  ui.pause.hidden = !on;
  ui.switchCamera.hidden = !on;
  ui.pause.textContent = app.camera.paused ? 'Resume' : 'Pause';
  ui.pause.setAttribute('aria-pressed', String(app.camera.paused));
  updateButtons();
}

const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r()));
const waitForWake = () => new Promise((r) => (app.camera.wake = r));

async function cameraLoop() {
  while (app.camera.on) {
    if (app.camera.paused || !app.vlm || ui.video.readyState < 2 || !ui.video.videoWidth) {
      // Wait for resume / model / first frame without spinning.
      await Promise.race([waitForWake(), new Promise((r) => setTimeout(r, 250))]);
      continue;
    }
    // Grab the newest frame now (not one queued while the last caption ran).
    let frame;
    try {
      frame = await createImageBitmap(ui.video);
    } catch {
      await nextFrame();
      continue;
    }
    const shown = { width: frame.width, height: frame.height };
    // The package may transfer the bitmap to its worker, so nothing here uses it afterwards.
    const ok = await runModel(frame, shown);
    ui.state.dataset.frames = String(Number(ui.state.dataset.frames || 0) + (ok ? 1 : 0));
    if (!ok && app.camera.on && ui.state.dataset.state === 'error') {
      // Do not hammer a failing model with frames: pause and let the person decide.
      app.camera.paused = true;
      setCameraUi(true);
    }
    await nextFrame();
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring.

function wire() {
  for (const r of document.querySelectorAll('input[name=model-source]')) {
    r.addEventListener('change', () => {
      const v = document.querySelector('input[name=model-source]:checked').value;
      ui.modelUrlRow.hidden = v !== 'url';
      ui.modelFolderRow.hidden = v !== 'folder';
    });
  }
  ui.load.addEventListener('click', () => loadModel());
  ui.modelUrl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') loadModel();
  });
  ui.modelFolder.addEventListener('change', () => loadModel());
  ui.cancelLoad.addEventListener('click', () => app.loadAbort?.abort());

  ui.file.addEventListener('change', () => {
    const f = ui.file.files && ui.file.files[0];
    if (f) setImage(f, f.name);
  });
  for (const b of document.querySelectorAll('.example')) {
    b.addEventListener('click', async () => {
      try {
        const res = await fetch(b.dataset.src);
        if (!res.ok) throw new Error(`${b.dataset.src}: HTTP ${res.status}`);
        await setImage(await res.blob(), b.dataset.src.split('/').pop());
      } catch (e) {
        showError(Object.assign(new Error(`the example image could not be fetched (${e.message})`), { code: 'network' }));
      }
    });
  }
  ui.drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      ui.file.click();
    }
  });
  ui.drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    ui.drop.classList.add('dragging');
  });
  ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('dragging'));
  ui.drop.addEventListener('drop', (e) => {
    e.preventDefault();
    ui.drop.classList.remove('dragging');
    const f = [...(e.dataTransfer?.files || [])][0];
    if (f) setImage(f, f.name);
    else showError(Object.assign(new Error('nothing droppable: drop an image file'), { code: 'bad-image' }));
  });
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (!item) return; // plain text paste into the prompt box etc.
    e.preventDefault();
    setImage(item.getAsFile(), 'pasted image');
  });

  ui.camera.addEventListener('click', () => (app.camera.on ? stopCamera() : startCamera()));
  ui.pause.addEventListener('click', () => {
    app.camera.paused = !app.camera.paused;
    setCameraUi(true);
    app.camera.wake?.();
  });
  ui.switchCamera.addEventListener('click', async () => {
    const cams = await listCameras();
    if (cams.length < 2) return;
    const i = cams.findIndex((c) => c.deviceId === app.camera.deviceId);
    startCamera(cams[(i + 1) % cams.length].deviceId);
  });

  for (const b of document.querySelectorAll('.preset')) {
    b.addEventListener('click', () => {
      ui.prompt.value = b.dataset.prompt;
      if (!app.camera.on) runOnImage();
    });
  }
  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!app.camera.on) runOnImage();
  });
  ui.stop.addEventListener('click', () => {
    app.rerun = false;
    stopRun();
    if (app.camera.on && !app.camera.paused) {
      app.camera.paused = true;
      setCameraUi(true);
    }
  });
  ui.clearCache.addEventListener('click', async () => {
    try {
      await app.Pinhole.cache.delete();
      ui.loadStatus.textContent = 'Downloaded models forgotten (the loaded one stays in memory until you reload).';
    } catch (e) {
      showError(e);
    }
  });
}

async function main() {
  wire();
  if ('serviceWorker' in navigator) {
    // Offline after the first visit. A failure here only costs offline use, so it is not shown.
    navigator.serviceWorker.register('sw.js').catch(() => {});
  }
  try {
    const mod = await import('./js/index.js');
    app.Pinhole = mod.Pinhole;
  } catch (e) {
    showError(new Error(`The pinhole package could not be loaded (${e.message}). If you run the demo from a clone, start it with \`npm start\`, which builds pkg/ first.`));
    ui.adapter.textContent = '–';
    ui.load.disabled = true;
    setState('error', 'error');
    return;
  }
  const ok = await showSupport();
  if (!ok) {
    showError(Object.assign(new Error(app.noWebgpuReason), { code: 'no-webgpu' }));
    ui.load.disabled = true;
    setState('error', 'no WebGPU');
    return;
  }
  loadModel();
}

main().catch((e) => showError(e));
