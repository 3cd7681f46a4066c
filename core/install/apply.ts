/**
 * Brings a tree to a desired state, idempotently: each entry is compared
 * with what is on disk (type, bytes, mode, owner, link target) and only a
 * difference is written, so a second install reports no changes. Files are
 * written to a temporary name and renamed, so a crash leaves the old file
 * or the new one, never half of one.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { inRoot } from "./layout.ts";

export interface Owner {
  uid: number;
  gid: number;
}

export type Entry =
  | ({ kind: "dir"; path: string; mode: number } & Owner)
  | ({ kind: "file"; path: string; mode: number; content: Uint8Array } & Owner)
  | { kind: "symlink"; path: string; target: string };

export interface Change {
  path: string;
  action: "create" | "update" | "chmod" | "chown" | "remove";
  detail?: string;
}

const octal = (m: number) => `0${(m & 0o7777).toString(8)}`;

function lstat(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function sameBytes(path: string, want: Uint8Array): boolean {
  const have = readFileSync(path);
  return have.length === want.length && Buffer.compare(have, want) === 0;
}

/** What applying `entries` under `root` would change (dry run), or changes it (apply). */
export function applyEntries(root: string, entries: Entry[], dryRun: boolean): Change[] {
  const changes: Change[] = [];
  for (const e of entries) {
    const real = inRoot(root, e.path);
    const st = lstat(real);
    if (e.kind === "symlink") {
      if (st?.isSymbolicLink() && readlinkSync(real) === e.target) continue;
      changes.push({ path: e.path, action: st ? "update" : "create", detail: `-> ${e.target}` });
      if (dryRun) continue;
      // Atomic switch: a new link beside the old one, renamed over it (how the A/B slot flips too).
      const tmp = `${real}.tmp-${process.pid}`;
      rmSync(tmp, { force: true });
      symlinkSync(e.target, tmp);
      renameSync(tmp, real);
      continue;
    }
    const wrongType = st && (e.kind === "dir" ? !st.isDirectory() : !st.isFile());
    if (!st || wrongType) {
      changes.push({ path: e.path, action: st ? "update" : "create", detail: octal(e.mode) });
      if (dryRun) continue;
      if (wrongType) rmSync(real, { recursive: true, force: true });
      // Parents the plan does not name (DIR/var, DIR/var/lib) get the usual 0755, not this entry's mode.
      mkdirSync(dirname(real), { recursive: true, mode: 0o755 });
      if (e.kind === "dir") mkdirSync(real, { mode: e.mode });
      else writeAtomic(real, e.content, e.mode);
      chmodSync(real, e.mode);
      chownSync(real, e.uid, e.gid);
      continue;
    }
    if (e.kind === "file" && !sameBytes(real, e.content)) {
      changes.push({ path: e.path, action: "update", detail: `${e.content.length} bytes` });
      if (!dryRun) {
        writeAtomic(real, e.content, e.mode);
        chownSync(real, e.uid, e.gid);
      }
      continue;
    }
    if ((st.mode & 0o7777) !== e.mode) {
      changes.push({ path: e.path, action: "chmod", detail: `${octal(st.mode)} -> ${octal(e.mode)}` });
      if (!dryRun) chmodSync(real, e.mode);
    }
    if (st.uid !== e.uid || st.gid !== e.gid) {
      changes.push({ path: e.path, action: "chown", detail: `${st.uid}:${st.gid} -> ${e.uid}:${e.gid}` });
      if (!dryRun) chownSync(real, e.uid, e.gid);
    }
  }
  return changes;
}

function writeAtomic(path: string, content: Uint8Array, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}
