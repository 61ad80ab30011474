// The hand-written js/index.d.ts against the implementation: `impl/` holds the declarations
// TypeScript infers from js/index.js (written by tests/types/run.mjs). Every declared export and
// member must exist in the implementation with an assignable type, and every public export and
// member of the implementation must be declared.

import type * as Decl from '../../js/index.js';
import type * as Impl from './impl/index.js';

type Public<T> = { [K in keyof T as K extends `_${string}` ? never : K]: T[K] };
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const ok = <T extends true>(): T | undefined => undefined;

// Exports: the same names.
ok<Same<keyof typeof Decl, keyof typeof Impl>>();

// Static side of Pinhole: load, support, cache, runKernelTests.
declare const implStatics: Public<Omit<typeof Impl.Pinhole, 'prototype'>>;
const statics: Omit<typeof Decl.Pinhole, 'prototype'> = implStatics;
ok<Same<keyof Public<Omit<typeof Impl.Pinhole, 'prototype'>>, keyof Omit<typeof Decl.Pinhole, 'prototype'>>>();

// Instance side: generate, stream, dispose, info, adapter, loadMs, memory.
declare const implInstance: Public<Impl.Pinhole>;
const instance: Decl.Pinhole = implInstance;
ok<Same<keyof Public<Impl.Pinhole>, keyof Decl.Pinhole>>();

// Errors.
declare const implError: Impl.PinholeError;
const error: Decl.PinholeError = implError;
const codes: readonly Decl.PinholeErrorCode[] = Decl_ERROR_CODES();
declare function Decl_ERROR_CODES(): typeof Impl.ERROR_CODES;

export { statics, instance, error, codes };
