/**
 * A deliberately small ustar (POSIX.1-1988) writer and a strict reader.
 *
 * The writer is deterministic: the same entries give the same bytes (mtime 0,
 * uid/gid 0, no owner names, fixed modes, no record padding), so a package's
 * digest depends only on its content.
 *
 * The reader accepts only what a content package needs — regular files and
 * directories — and refuses, with a distinct PKG_TAR_* code, everything that
 * could make extraction write outside its target or surprise a consumer:
 * links, devices, fifos, `..`, absolute paths, duplicates, extension headers
 * (pax, GNU long names), oversized or too many entries, truncation and
 * trailing garbage. It reads archives from GNU `tar --format=ustar` and, for
 * short names, plain GNU format, so packages can be built by hand.
 */
import { PackageError } from "../errors.ts";
import { MAX_PATH_BYTES, pathProblem } from "./paths.ts";

export interface TarEntry {
  /** Relative path; directories end with "/". */
  path: string;
  /** File content (a view into the archive bytes); empty for directories. */
  data: Uint8Array;
  /** Permission bits only (mode & 0o777); setuid/setgid/sticky bits are dropped. */
  mode: number;
  type: "file" | "directory";
}

export interface TarInput {
  /** A path ending in "/" is written as a directory entry (and must have no data). */
  path: string;
  data: Uint8Array;
  mode?: number;
}

export interface ReadTarOptions {
  /** The archive's name, for error messages. */
  file: string;
  maxEntries?: number;
  maxEntryBytes?: number;
}

export const DEFAULT_MAX_ENTRIES = 10_000;
export const DEFAULT_MAX_ENTRY_BYTES = 512 * 1024 * 1024;

const BLOCK = 512;
const FILE_MODE = 0o644;
const DIR_MODE = 0o755;
const NAME_BYTES = 100;
const PREFIX_BYTES = 155;
/** 11 octal digits: the largest size a ustar header can state. */
const MAX_USTAR_SIZE = 0o77777777777;

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF stays in the name (and is refused) instead of vanishing silently.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------
// Writer

export function writeTar(entries: TarInput[]): Uint8Array {
  const paths = new PathIndex((code, path, reason) => {
    throw new PackageError(code, `tar entry ${JSON.stringify(path)}: ${reason}`, { file: path });
  });
  let total = 2 * BLOCK;
  const prepared = entries.map((entry) => {
    const isDir = entry.path.endsWith("/");
    const relative = isDir ? entry.path.slice(0, -1) : entry.path;
    // The writer applies the reader's path rules so it can never emit an archive the reader refuses.
    const problem = pathProblem(relative);
    if (problem)
      throw new PackageError(problem.code, `tar entry ${JSON.stringify(entry.path)}: ${problem.reason}`, {
        file: entry.path,
      });
    if (isDir && entry.data.length > 0) {
      throw new PackageError(
        "PKG_TAR_BAD_HEADER",
        `tar entry ${JSON.stringify(entry.path)}: directory with data`,
        { file: entry.path },
      );
    }
    if (entry.data.length > MAX_USTAR_SIZE) {
      throw new PackageError(
        "PKG_TAR_TOO_LARGE",
        `tar entry ${JSON.stringify(entry.path)}: larger than ustar allows`,
        { file: entry.path },
      );
    }
    const mode = entry.mode ?? (isDir ? DIR_MODE : FILE_MODE);
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw new PackageError(
        "PKG_TAR_BAD_HEADER",
        `tar entry ${JSON.stringify(entry.path)}: mode must be within 0o777`,
        { file: entry.path },
      );
    }
    paths.add(relative, isDir);
    total += BLOCK + padded(entry.data.length);
    return { path: entry.path, data: entry.data, mode, isDir };
  });

  const out = new Uint8Array(total);
  let offset = 0;
  for (const e of prepared) {
    out.set(header(e.path, e.data.length, e.mode, e.isDir), offset);
    offset += BLOCK;
    out.set(e.data, offset);
    offset += padded(e.data.length);
  }
  // The remaining two blocks are already zero: the end-of-archive marker.
  return out;
}

function header(path: string, size: number, mode: number, isDir: boolean): Uint8Array {
  const h = new Uint8Array(BLOCK);
  // A directory's trailing "/" is conventional, not required (the type flag says "directory"):
  // drop it when that is what lets a 100-byte last component fit the name field.
  const { name, prefix } =
    isDir && !fitsUstar(path) ? splitUstarPath(path.slice(0, -1)) : splitUstarPath(path);
  h.set(name, 0);
  writeOctal(h, 100, 8, mode);
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, 0); // mtime
  h.fill(0x20, 148, 156); // checksum counts as spaces while summing
  h[156] = isDir ? 0x35 /* '5' */ : 0x30; /* '0' */
  h.set(encoder.encode("ustar\u000000"), 257);
  writeOctal(h, 329, 8, 0); // devmajor
  writeOctal(h, 337, 8, 0); // devminor
  h.set(prefix, 345);
  const sum = h.reduce((a, b) => a + b, 0);
  // Checksum field: six octal digits, NUL, space (what GNU tar writes).
  h.set(encoder.encode(`${sum.toString(8).padStart(6, "0")}\u0000 `), 148);
  return h;
}

/** Splits a long path at a "/" into ustar's prefix (≤155 bytes) and name (≤100 bytes) fields. */
function splitUstarPath(path: string): { name: Uint8Array; prefix: Uint8Array } {
  const bytes = encoder.encode(path);
  const tooLong = () =>
    new PackageError(
      "PKG_TAR_PATH_TOO_LONG",
      `tar entry ${JSON.stringify(path)}: path does not fit a ustar header`,
      {
        file: path,
      },
    );
  if (bytes.length > MAX_PATH_BYTES) throw tooLong();
  if (bytes.length <= NAME_BYTES) return { name: bytes, prefix: new Uint8Array(0) };
  // Prefer the longest prefix that fits, leaving the name as short as possible; the name must not be empty.
  for (let i = Math.min(PREFIX_BYTES, bytes.length - 2); i > 0; i--) {
    if (bytes[i] === 0x2f && bytes.length - i - 1 <= NAME_BYTES) {
      return { name: bytes.subarray(i + 1), prefix: bytes.subarray(0, i) };
    }
  }
  throw tooLong();
}

function fitsUstar(path: string): boolean {
  try {
    splitUstarPath(path);
    return true;
  } catch {
    return false;
  }
}

function writeOctal(h: Uint8Array, offset: number, length: number, value: number): void {
  h.set(encoder.encode(`${value.toString(8).padStart(length - 1, "0")}\u0000`), offset);
}

function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

// ---------------------------------------------------------------------------
// Reader

export function readTar(bytes: Uint8Array, opts: ReadTarOptions): TarEntry[] {
  const { file } = opts;
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const maxEntryBytes = opts.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  const fail = (code: string, reason: string, entry?: string, offset?: number): never => {
    const where = entry === undefined ? "" : ` entry ${JSON.stringify(entry)}`;
    throw new PackageError(code, `${file}: tar${where}: ${reason}`, {
      file,
      details: { ...(entry === undefined ? {} : { entry }), ...(offset === undefined ? {} : { offset }) },
    });
  };
  const paths = new PathIndex((code, path, reason) => fail(code, reason, path));
  const entries: TarEntry[] = [];
  let offset = 0;

  for (;;) {
    if (offset + BLOCK > bytes.length)
      fail("PKG_TAR_TRUNCATED", "archive ends without the end-of-archive marker", undefined, offset);
    const h = bytes.subarray(offset, offset + BLOCK);

    if (isZero(h)) {
      // End of archive is two zero blocks; only further zero blocks (record padding) may follow.
      if (offset + 2 * BLOCK > bytes.length)
        fail("PKG_TAR_TRUNCATED", "archive ends after a lone zero block", undefined, offset);
      const rest = bytes.subarray(offset + BLOCK);
      if (rest.length % BLOCK !== 0 || !isZero(rest)) {
        fail("PKG_TAR_TRAILING_DATA", "data after the end-of-archive marker", undefined, offset + BLOCK);
      }
      return entries;
    }

    if (!checksumMatches(h))
      fail("PKG_TAR_CHECKSUM", "header checksum mismatch (corrupt or not a tar)", undefined, offset);
    const magic = ascii(h.subarray(257, 265));
    const isPosixUstar = magic === "ustar\u000000";
    const isGnu = magic === "ustar  \u0000";
    if (!isPosixUstar && !isGnu)
      fail("PKG_TAR_BAD_HEADER", "not a ustar or GNU tar header (v7 tar is not accepted)", undefined, offset);

    // In GNU format the prefix area holds other fields, so only POSIX ustar headers use it.
    const rawName = field(h, 0, NAME_BYTES);
    const rawPrefix = isPosixUstar ? field(h, 345, PREFIX_BYTES) : new Uint8Array(0);
    let path: string;
    try {
      path = (rawPrefix.length > 0 ? `${strictUtf8.decode(rawPrefix)}/` : "") + strictUtf8.decode(rawName);
    } catch {
      return fail("PKG_TAR_BAD_PATH", "entry name is not valid UTF-8", undefined, offset);
    }

    const typeflag = String.fromCharCode(h[156] ?? 0);
    let type: TarEntry["type"];
    switch (typeflag) {
      case "0":
      case "\u0000":
        type = "file";
        break;
      case "5":
        type = "directory";
        break;
      case "1":
        return fail("PKG_TAR_LINK", "hard links are not allowed", path, offset);
      case "2":
        return fail("PKG_TAR_LINK", "symbolic links are not allowed", path, offset);
      case "3":
      case "4":
        return fail("PKG_TAR_DEVICE", "device files are not allowed", path, offset);
      case "6":
        return fail("PKG_TAR_FIFO", "fifos are not allowed", path, offset);
      case "x":
      case "g":
        return fail(
          "PKG_TAR_UNSUPPORTED_ENTRY",
          "pax extended headers are not supported (write with --format=ustar)",
          path,
          offset,
        );
      case "L":
      case "K":
        return fail(
          "PKG_TAR_UNSUPPORTED_ENTRY",
          "GNU long names are not supported (write with --format=ustar)",
          path,
          offset,
        );
      default:
        return fail(
          "PKG_TAR_UNSUPPORTED_ENTRY",
          `unsupported entry type ${JSON.stringify(typeflag)}`,
          path,
          offset,
        );
    }

    let relative = path;
    if (type === "directory") {
      if (relative.endsWith("/")) relative = relative.slice(0, -1);
    } else if (relative.endsWith("/")) {
      fail("PKG_TAR_BAD_PATH", "regular file name ends with '/'", path, offset);
    }
    const problem = pathProblem(relative);
    if (problem) fail(problem.code, problem.reason, path, offset);

    if (entries.length >= maxEntries)
      fail("PKG_TAR_TOO_MANY_ENTRIES", `more than ${maxEntries} entries`, path, offset);

    const mode = parseOctal(h, 100, 8);
    const size = parseOctal(h, 124, 12);
    if (mode === undefined || size === undefined)
      return fail("PKG_TAR_BAD_HEADER", "malformed mode or size field", path, offset);
    if (type === "directory" && size !== 0)
      fail("PKG_TAR_BAD_HEADER", "directory entry with data", path, offset);
    if (size > maxEntryBytes)
      fail("PKG_TAR_TOO_LARGE", `entry is ${size} bytes, limit is ${maxEntryBytes}`, path, offset);

    const start = offset + BLOCK;
    if (start + padded(size) > bytes.length)
      fail("PKG_TAR_TRUNCATED", "entry data runs past the end of the archive", path, offset);

    paths.add(relative, type === "directory");
    entries.push({
      path: type === "directory" ? `${relative}/` : relative,
      data: bytes.subarray(start, start + size),
      mode: mode & 0o777,
      type,
    });
    offset = start + padded(size);
  }
}

function field(h: Uint8Array, offset: number, length: number): Uint8Array {
  const f = h.subarray(offset, offset + length);
  const nul = f.indexOf(0);
  return nul === -1 ? f : f.subarray(0, nul);
}

function ascii(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

function isZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function checksumMatches(h: Uint8Array): boolean {
  const stored = parseOctal(h, 148, 8);
  if (stored === undefined) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
  return sum === stored;
}

/**
 * Parses an octal numeric field: optional leading spaces, at least one octal
 * digit, then only NULs or spaces. GNU base-256 (high bit set) is refused:
 * it is only needed for values a package never has.
 */
function parseOctal(h: Uint8Array, offset: number, length: number): number | undefined {
  const f = h.subarray(offset, offset + length);
  let i = 0;
  while (i < f.length && f[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < f.length; i++) {
    const c = f[i] ?? 0;
    if (c < 0x30 || c > 0x37) break;
    value = value * 8 + (c - 0x30);
    digits++;
  }
  for (; i < f.length; i++) if (f[i] !== 0 && f[i] !== 0x20) return undefined;
  if (digits === 0 || !Number.isSafeInteger(value)) return undefined;
  return value;
}

/**
 * Tracks paths seen so far to refuse duplicates and file/directory clashes
 * ("a" as a file and "a/b"). Keys are case-folded: two entries differing only
 * in case would overwrite each other on macOS and Windows hosts.
 */
class PathIndex {
  private readonly explicit = new Map<string, boolean>(); // key → isDir
  private readonly impliedDirs = new Set<string>();

  constructor(private readonly fail: (code: string, path: string, reason: string) => never) {}

  add(path: string, isDir: boolean): void {
    const key = path.toLowerCase();
    if (this.explicit.has(key))
      this.fail("PKG_TAR_DUPLICATE", path, "duplicate path (compared case-insensitively)");
    if (!isDir && this.impliedDirs.has(key))
      this.fail("PKG_TAR_PATH_CONFLICT", path, "file where an earlier entry needs a directory");
    const parts = key.split("/");
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join("/");
      if (this.explicit.get(ancestor) === false) {
        this.fail("PKG_TAR_PATH_CONFLICT", path, `parent ${JSON.stringify(ancestor)} is a file`);
      }
      this.impliedDirs.add(ancestor);
    }
    this.explicit.set(key, isDir);
  }
}
