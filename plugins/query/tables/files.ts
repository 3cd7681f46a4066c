/**
 * `file` and `hash`: osquery's tables over the paths a query names. Like
 * osquery they need a `path` or `directory` constraint — they never walk the
 * whole disk — and `LIKE` patterns expand with osquery's wildcards: `%`
 * within one path component, `%%` as a component for any depth. The
 * enumeration is a superset; SQLite applies the real predicate afterwards.
 */

import type { BigIntStats } from "node:fs";
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { GenContext, Row } from "./context.ts";

/** osquery's read_max: files above it are not hashed. */
export const HASH_READ_MAX_BYTES = 50 * 1024 * 1024;
/** Bounds what one query can make the engine touch. */
export const MAX_FILES_PER_QUERY = 10_000;
const MAX_RECURSION_DEPTH = 32;

interface Target {
  path: string;
  directory: string;
}

function safeLstat(path: string): BigIntStats | undefined {
  try {
    return lstatSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

function safeStat(path: string): BigIntStats | undefined {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function likeComponentRegex(component: string): RegExp {
  const body = component
    .split("")
    .map((ch) => (ch === "%" ? ".*" : ch === "_" ? "." : ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("");
  // SQLite's LIKE is case-insensitive for ASCII: match the same way so the superset is complete.
  return new RegExp(`^${body}$`, "i");
}

/** Expands an osquery LIKE path pattern into existing paths (bounded). */
export function expandLikePattern(pattern: string, limit: number, warn: (m: string) => void): string[] {
  if (!pattern.startsWith("/")) {
    warn(`path pattern ${JSON.stringify(pattern)} is not absolute; ignored`);
    return [];
  }
  const parts = pattern.split("/").filter((p) => p !== "");
  const out: string[] = [];
  let truncated = false;
  const push = (p: string) => {
    if (out.length >= limit) {
      truncated = true;
      return false;
    }
    out.push(p);
    return true;
  };
  const walkAll = (dir: string, depth: number): boolean => {
    if (depth > MAX_RECURSION_DEPTH) return true;
    for (const name of entries(dir)) {
      const p = join(dir, name);
      if (!push(p)) return false;
      const st = safeLstat(p);
      if (st?.isDirectory() && !walkAll(p, depth + 1)) return false;
    }
    return true;
  };
  const step = (dir: string, i: number): boolean => {
    if (i === parts.length) return push(dir);
    const part = parts[i]!;
    if (part === "%%") return walkAll(dir, 0);
    if (!part.includes("%") && !part.includes("_")) {
      const p = join(dir, part);
      if (i === parts.length - 1 ? safeLstat(p) : safeStat(p)?.isDirectory()) return step(p, i + 1);
      return true;
    }
    const re = likeComponentRegex(part);
    for (const name of entries(dir)) {
      if (!re.test(name)) continue;
      const p = join(dir, name);
      if (i < parts.length - 1 && !safeStat(p)?.isDirectory()) continue;
      if (!step(p, i + 1)) return false;
    }
    return true;
  };
  step("/", 0);
  if (truncated) warn(`path pattern ${JSON.stringify(pattern)} matched more than ${limit} files; truncated`);
  return out;
}

function targets(ctx: GenContext, table: string): Target[] {
  if (ctx.paths.length === 0 && ctx.directories.length === 0 && ctx.likes.length === 0) {
    ctx.warn(
      `${table}: the query has no path or directory constraint, so the table is empty (osquery requires one)`,
    );
    return [];
  }
  const seen = new Set<string>();
  const out: Target[] = [];
  const add = (t: Target) => {
    const key = `${t.path}\0${t.directory}`;
    if (seen.has(key) || out.length >= MAX_FILES_PER_QUERY) return;
    seen.add(key);
    out.push(t);
  };
  for (const p of ctx.paths) if (p.startsWith("/")) add({ path: p, directory: dirname(p) });
  for (const d of ctx.directories) {
    if (!d.startsWith("/")) continue;
    const dir = d.length > 1 ? d.replace(/\/+$/, "") : d;
    for (const name of entries(dir)) add({ path: join(dir, name), directory: d });
  }
  for (const like of ctx.likes) {
    for (const p of expandLikePattern(like, MAX_FILES_PER_QUERY, ctx.warn))
      add({ path: p, directory: dirname(p) });
  }
  if (out.length >= MAX_FILES_PER_QUERY)
    ctx.warn(`${table}: more than ${MAX_FILES_PER_QUERY} paths; truncated`);
  return out;
}

function fileType(st: BigIntStats): string {
  if (st.isFile()) return "regular";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isBlockDevice()) return "block";
  if (st.isCharacterDevice()) return "character";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  return "unknown";
}

const seconds = (ms: bigint) => ms / 1000n;

export function genFile(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const t of targets(ctx, "file")) {
    const l = safeLstat(t.path);
    if (!l) continue;
    const isLink = l.isSymbolicLink();
    // Attributes describe what the path resolves to; a dangling link describes itself.
    const st = (isLink ? safeStat(t.path) : l) ?? l;
    // osquery reports the link's own text (readlink), not the resolved path: `../lib/x` stays relative.
    let target = "";
    if (isLink) {
      try {
        target = readlinkSync(t.path);
      } catch {
        target = "";
      }
    }
    rows.push({
      path: t.path,
      directory: t.directory,
      filename: basename(t.path),
      inode: st.ino,
      uid: st.uid,
      gid: st.gid,
      mode: (Number(st.mode) & 0o7777).toString(8).padStart(4, "0"),
      device: st.rdev,
      size: st.size,
      block_size: st.blksize,
      atime: seconds(st.atimeMs),
      mtime: seconds(st.mtimeMs),
      ctime: seconds(st.ctimeMs),
      // osquery's Linux file table fills btime with 0 (it does not use statx's birth time).
      btime: 0,
      hard_links: st.nlink,
      symlink: isLink ? 1 : 0,
      type: fileType(st),
      symlink_target_path: target,
    });
  }
  return rows;
}

type Algo = "md5" | "sha1" | "sha256";

function hashFile(path: string, algos: Algo[]): Record<Algo, string> | undefined {
  const hashers = algos.map((a) => [a, new Bun.CryptoHasher(a)] as const);
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      const chunk = buf.subarray(0, n);
      for (const [, h] of hashers) h.update(chunk);
    }
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
  const out = { md5: "", sha1: "", sha256: "" };
  for (const [a, h] of hashers) out[a] = h.digest("hex");
  return out;
}

export function genHash(ctx: GenContext): Row[] {
  const algos = (["md5", "sha1", "sha256"] as const).filter((a) => ctx.wants(a));
  const rows: Row[] = [];
  for (const t of targets(ctx, "hash")) {
    const st = safeStat(t.path);
    // osquery hashes regular files only.
    if (!st?.isFile()) continue;
    let sums: Record<Algo, string> | undefined = { md5: "", sha1: "", sha256: "" };
    if (algos.length > 0) {
      if (st.size > BigInt(HASH_READ_MAX_BYTES)) {
        ctx.warn(`hash: ${t.path} is larger than ${HASH_READ_MAX_BYTES} bytes; not hashed`);
      } else {
        sums = hashFile(t.path, algos);
        if (!sums) continue;
      }
    }
    rows.push({ path: t.path, directory: t.directory, md5: sums.md5, sha1: sums.sha1, sha256: sums.sha256 });
  }
  return rows;
}
