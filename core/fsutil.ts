/**
 * Durable file operations. Every state change the agent makes goes through
 * these so that a crash (power loss, SIGKILL) leaves either the old or the
 * new file, never a torn one: write to a temp file in the same directory,
 * fsync it, rename over the target, fsync the directory.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { classifyWriteError, writeStep } from "./write-errors.ts";

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

const TEMP_SUFFIX = ".tmp";
const TEMP_NAME = /^\.(\d+)\.\d+\.[a-z0-9]+\.tmp$/;

/**
 * Removes temp files that atomicWriteFile left behind when its process was
 * killed between write and rename. Files of a live process are kept.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = false;
    try {
      process.kill(pid, 0);
      // Our own writes are synchronous, so a temp file bearing our pid is a recycled pid's leftover.
      alive = pid !== process.pid;
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === "EPERM";
    }
    if (alive) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** Atomically replaces `path` with `data` (temp + fsync + rename + fsync dir). */
export function atomicWriteFile(path: string, data: Uint8Array | string, mode = 0o644): void {
  const dir = dirname(path);
  writeStep(dir, "creating the directory", () => mkdirSync(dir, { recursive: true }));
  const tmp = join(dir, `.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}${TEMP_SUFFIX}`);
  try {
    writeFileDurable(tmp, data, mode);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw classifyWriteError(e, path, "writing the new version");
  }
  writeStep(dir, "syncing the directory", () => fsyncDir(dir));
}

export function atomicWriteJson(path: string, value: unknown, mode = 0o644): void {
  atomicWriteFile(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}
