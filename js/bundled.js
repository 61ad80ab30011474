// @ts-check
// The model that ships inside the package: `models/pinhole-shapes-q4`, the 4-bit copy of the
// bundled shapes model (0.85 MB of weights; it only knows synthetic scenes of coloured circles,
// squares and triangles). `Pinhole.load()` and `Pinhole.load('pinhole-shapes')` load it.
//
// Every file is named by a literal `new URL('…', import.meta.url)`: bundlers (Vite, webpack,
// Parcel) recognise the pattern and copy the file into the build, possibly under a hashed name,
// so the engine gets a map from file name to URL rather than a folder.

export const BUNDLED_MODEL = 'pinhole-shapes';

/** @returns {{place: string, folder: string, files: Record<string, string>}} */
export function bundledModel() {
  const files = {
    'config.json': new URL('../models/pinhole-shapes-q4/config.json', import.meta.url).href,
    'tokenizer.json': new URL('../models/pinhole-shapes-q4/tokenizer.json', import.meta.url).href,
    'generation_config.json': new URL('../models/pinhole-shapes-q4/generation_config.json', import.meta.url).href,
    'preprocessor_config.json': new URL('../models/pinhole-shapes-q4/preprocessor_config.json', import.meta.url).href,
    'model.safetensors': new URL('../models/pinhole-shapes-q4/model.safetensors', import.meta.url).href,
  };
  // The cache keeps the model under the folder of its files (after a bundler, the assets
  // folder). A bundler may inline small files as data: URLs, which cannot be a base.
  const at = Object.values(files).find((u) => /^https?:/.test(u));
  const g = /** @type {any} */ (globalThis);
  const folder = at ? new URL('./', at).href : new URL('pinhole-shapes/', g.document?.baseURI ?? g.location?.href).href;
  return { place: 'pinhole-shapes (bundled, 4-bit)', folder, files };
}
