/**
 * libc through bun:ffi, opened on first use with the symbols one part of the
 * kernel needs (Landlock, the kernel sensors, the host transfer region).
 * A libc that cannot be opened gives null, never a throw: each caller turns
 * that into a degraded feature with a reason, not a crash.
 */
import { dlopen, type FFIFunction } from "bun:ffi";

export type Libc = {
  // biome-ignore lint/suspicious/noExplicitAny: bun:ffi symbol table
  symbols: Record<string, (...args: any[]) => any>;
};

/** A loader for libc.so.6 with `symbols`: the first call opens it, later calls return the same (or null). */
export function lazyLibc(symbols: Record<string, FFIFunction>): () => Libc | null {
  let libc: Libc | null | undefined;
  return () => {
    if (libc !== undefined) return libc;
    try {
      libc = dlopen("libc.so.6", symbols) as unknown as Libc;
    } catch {
      libc = null;
    }
    return libc;
  };
}
