// Types of the pinhole npm package (hand-written; the implementation is js/index.js, checked
// against these declarations by tests/types/check.ts).

import type {
  PinholeErrorCode,
  ModelSource,
  BundledModelName,
  LoadOptions,
  Support,
  CachedModel,
  KernelTestReport,
  ModelInfo,
  LoadMemory,
  EngineAdapter,
  ImageInput,
  GenerateOptions,
  GenerateResult,
  StreamPiece,
} from './types.js';

export type * from './types.js';

export declare const ERROR_CODES: readonly PinholeErrorCode[];

/** The Cache Storage cache that holds downloaded model files. */
export declare const CACHE_NAME: string;

/** Every failure of the package rejects with a PinholeError. */
export declare class PinholeError extends Error {
  constructor(code: PinholeErrorCode, message: string, options?: { cause?: unknown });
  readonly name: 'PinholeError';
  readonly code: PinholeErrorCode;
  toJSON(): { code: PinholeErrorCode; message: string };
}

export declare class Pinhole {
  private constructor();
  /** A model folder URL, local files, or nothing / 'pinhole-shapes' for the model in the package. */
  static load(source?: ModelSource | BundledModelName, options?: LoadOptions): Promise<Pinhole>;
  static support(): Promise<Support>;
  static readonly cache: {
    list(): Promise<CachedModel[]>;
    delete(url?: string | URL): Promise<number>;
  };
  static runKernelTests(options?: { worker?: boolean; filter?: string }): Promise<KernelTestReport>;

  readonly info: ModelInfo | null;
  readonly adapter: EngineAdapter | null;
  readonly loadMs: number | null;
  readonly memory: LoadMemory | null;

  generate(image: ImageInput, options?: GenerateOptions): Promise<GenerateResult>;
  stream(image: ImageInput, options?: GenerateOptions): AsyncGenerator<StreamPiece, GenerateResult, undefined>;
  dispose(): void;
}

export default Pinhole;
