// @ts-check
// The one table of engine calls, shared by the module worker (js/worker.js) and the in-thread
// backend of js/index.js (`worker: false`): a call is an op name, its payload and the callbacks;
// a new op is added here once.

import { PinholeError } from './errors.js';

/**
 * @typedef {{source?: any, image?: any, options?: object, stream?: boolean, filter?: string}} Payload
 * @typedef {{signal?: AbortSignal, onProgress?: (event: object) => void, onToken?: (piece: {text: string, tokenId: number}) => void}} Callbacks
 */

/**
 * Runs `op` on `engine`.
 * @param {import('./engine.js').Engine} engine
 * @param {string} op
 * @param {Payload} payload
 * @param {Callbacks} callbacks
 * @returns {Promise<unknown>}
 */
export async function dispatch(engine, op, payload, { signal, onProgress, onToken }) {
  switch (op) {
    case 'load':
      return engine.load(payload.source, { ...payload.options, signal, onProgress });
    case 'generate':
      return engine.generate(payload.image, { ...payload.options, signal, onToken: payload.stream ? onToken : undefined });
    case 'dispose':
      return engine.dispose();
    case 'info':
      return engine.info();
    case 'kernelTests':
      return engine.kernelTests(payload.filter);
    case 'debugPanic':
      return engine.debugPanic();
    case 'debugLoseDevice':
      return engine.debugLoseDevice();
    default:
      throw new PinholeError('bad-request', `unknown engine call '${op}'`);
  }
}
