/**
 * Durable file operations. Every state change the agent makes goes through
 * these so that a crash (power loss, SIGKILL) leaves either the old or the
 * new file, never a torn one: write to a temp file in the same directory,
 * fsync it, rename over the target, fsync the directory.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileDurable(path: string, data: Uint8Array | string, mode = 0o644): void {
  const fd = openSync(path, "w", mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Atomically replaces `path` with `data` (temp + fsync + rename + fsync dir). */
export function atomicWriteFile(path: string, data: Uint8Array | string, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    writeFileDurable(tmp, data, mode);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

export function atomicWriteJson(path: string, value: unknown, mode = 0o644): void {
  atomicWriteFile(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}
