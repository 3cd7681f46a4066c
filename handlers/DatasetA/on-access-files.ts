/**
 * How on-access scanning looks at a file: its key (dev, inode, mtime ns, ctime ns, size — what the
 * verdict cache and the sensor's AllowCache are keyed by) and its bytes, read through an fd.
 */
import { constants, fstatSync, readSync } from "node:fs";
import type { FileIdentity } from "../../core/sensors/allow-cache.ts";

export interface FileKey {
  key: string;
  size: number;
  regular: boolean;
  identity: FileIdentity;
}

export const keyOf = (st: FileIdentity) => `${st.dev}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}:${st.size}`;

export function fileKey(fd: number): FileKey {
  const st = fstatSync(fd, { bigint: true });
  return { key: keyOf(st), size: Number(st.size), regular: st.isFile(), identity: st };
}

/** Read-ahead opens: never follow a link, never block on a FIFO, leave atime alone. */
export const PREFETCH_FLAGS =
  constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (constants.O_NOATIME ?? 0);

/** Reads into `into` when given (a transfer lease of at least `size` bytes), else a new buffer. */
export function readAll(fd: number, size: number, into?: Uint8Array): Uint8Array {
  const out = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, out, got, size - got, got);
    if (n <= 0) break;
    got += n;
  }
  return out.subarray(0, got);
}
