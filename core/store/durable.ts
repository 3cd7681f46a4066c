/**
 * The store's durable primitives. They mirror core/fsutil.ts but put a
 * `crashPoint` between every pair of syscalls that change the disk, so the
 * crash tests can stop the process after any prefix of them. Temp files go
 * into the caller's work directory (the type's staging/), which `open()`
 * wipes, so a crash never leaves litter next to the state files.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeError } from "../errors.ts";
import { classifyWriteError, writeStep } from "../write-errors.ts";
import { crashPoint } from "./crashpoints.ts";

export function fsyncDirAt(dir: string): void {
  writeStep(dir, "syncing the directory", () => {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  });
  crashPoint(`fsync-dir ${basename(dir)}`);
}

/** Creates `dir` (and missing parents); returns true when something was created. */
export function mkdirTracked(dir: string): boolean {
  const created =
    writeStep(dir, "creating the directory", () => mkdirSync(dir, { recursive: true })) !== undefined;
  if (created) crashPoint(`mkdir ${basename(dir)}`);
  return created;
}

/** Writes a new file (must not exist) and fsyncs it. The directory entry is the caller's to fsync. */
export function writeNewFileSynced(path: string, data: Uint8Array | string, mode = 0o644): void {
  const fd = writeStep(path, "creating the file", () => openSync(path, "wx", mode));
  try {
    crashPoint(`create ${basename(path)}`);
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    writeStep(path, "writing the file", () => {
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    });
    crashPoint(`write ${basename(path)}`);
    writeStep(path, "syncing the file", () => fsyncSync(fd));
  } finally {
    closeSync(fd);
  }
  crashPoint(`fsync ${basename(path)}`);
}

/** rename + fsync of the destination directory (and of the source's, when different). */
export function renameDurable(from: string, to: string): void {
  writeStep(to, "renaming into place", () => renameSync(from, to));
  crashPoint(`rename ${basename(from)} -> ${basename(to)}`);
  fsyncDirAt(dirname(to));
  if (dirname(from) !== dirname(to)) fsyncDirAt(dirname(from));
}

/** Replaces `path` atomically: temp file in `workDir` (same filesystem), fsync, rename, fsync dir. */
export function atomicReplace(path: string, data: Uint8Array | string, workDir: string): void {
  const tmp = join(workDir, `.${basename(path)}.${randomSuffix()}.tmp`);
  try {
    writeNewFileSynced(tmp, data);
  } catch (e) {
    const d = describeError(e);
    if (d.code !== "STORE_NO_SPACE" && d.code !== "STORE_WRITE_FAILED") throw e;
    // The disk refused: give the space back and name the state file, not the temp file.
    rmSync(tmp, { force: true });
    throw classifyWriteError((e as { cause?: unknown }).cause, path, "writing the new version");
  }
  writeStep(path, "renaming the new version into place", () => renameSync(tmp, path));
  crashPoint(`rename -> ${basename(path)}`);
  fsyncDirAt(dirname(path));
}

export function atomicReplaceJson(path: string, value: unknown, workDir: string): void {
  atomicReplace(path, `${JSON.stringify(value, null, 2)}\n`, workDir);
}

export function removeTree(path: string): void {
  rmSync(path, { recursive: true, force: true });
  crashPoint(`rm ${basename(path)}`);
}

export function unlinkDurable(path: string): void {
  rmSync(path, { force: true });
  crashPoint(`unlink ${basename(path)}`);
  fsyncDirAt(dirname(path));
}

export function randomSuffix(): string {
  return crypto.getRandomValues(new Uint32Array(2)).reduce((s, n) => s + n.toString(36), "");
}
