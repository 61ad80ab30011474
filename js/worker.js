// @ts-check
// The module worker that runs the engine off the page's main thread (the calls themselves are
// js/dispatch.js, shared with the in-thread backend). Messages in:
//   {id, op: 'load', source, options}      {id, op: 'generate', image, options}
//   {id, op: 'abort', target}              {id, op: 'dispose' | 'info' | 'kernelTests' | 'debugPanic' | 'debugLoseDevice'}
// Messages out (same id): {type: 'progress', event} | {type: 'token', piece}
//   | {type: 'result', value} | {type: 'error', error: {code, message}}.
// Aborts arrive as messages: the worker keeps an AbortController per call.

import { Engine } from './engine.js';
import { toPinholeError } from './errors.js';
import { dispatch } from './dispatch.js';

const engine = new Engine();
const controllers = new Map();

// A panic inside an async wasm call also surfaces as an uncaught RuntimeError after the call
// was already rejected with 'internal'; keep it out of the console as an "uncaught" error.
self.addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof WebAssembly.RuntimeError) e.preventDefault();
});
self.addEventListener('error', (e) => {
  if (e.error instanceof WebAssembly.RuntimeError) e.preventDefault();
});

self.onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.op === 'abort') {
    controllers.get(msg.target)?.abort();
    return;
  }
  const { id } = msg;
  controllers.set(id, new AbortController());
  try {
    const value = await dispatch(engine, msg.op, msg, {
      signal: controllers.get(id)?.signal,
      onProgress: (event) => self.postMessage({ id, type: 'progress', event }),
      onToken: (piece) => self.postMessage({ id, type: 'token', piece }),
    });
    self.postMessage({ id, type: 'result', value });
  } catch (e) {
    self.postMessage({ id, type: 'error', error: toPinholeError(e).toJSON() });
  } finally {
    controllers.delete(id);
  }
};

self.postMessage({ type: 'ready' });
