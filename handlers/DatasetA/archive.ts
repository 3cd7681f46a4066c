/**
 * Container formats the scanner opens: zip (central directory read here,
 * members inflated with node:zlib, loaded on the first archive:
 * core/lazy-builtins.ts), gzip, and tar. Nothing here trusts a
 * declared size: inflation is capped by the caller's byte budget, the cap is
 * enforced on the bytes actually produced, and a member too large to keep in
 * memory is inflated into a spill file in the scanner's private work
 * directory and mapped, so memory stays bounded whatever the archive claims.
 */
import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { nodeZlib } from "../../core/lazy-builtins.ts";
import { parseOctal } from "../_shared/filetype/filetype.ts";

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  /** Offset of the member's local header. */
  localOffset: number;
  /** Offset of the compressed data (after the local header). */
  dataOffset: number;
}

export interface ZipListing {
  entries: ZipEntry[];
  /** Members whose data overlaps another member's: the construction of non-recursive zip bombs. */
  overlapping: boolean;
  truncated: boolean;
  problem?: string;
}

function u16(d: Uint8Array, o: number): number {
  return d[o]! | (d[o + 1]! << 8);
}
function u32(d: Uint8Array, o: number): number {
  return (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0;
}
function u64(d: Uint8Array, o: number): number {
  const hi = u32(d, o + 4);
  return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 2 ** 32 + u32(d, o);
}

const EOCD = 0x06054b50;
const EOCD_BYTES = Buffer.from([0x50, 0x4b, 0x05, 0x06]);
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CEN = 0x02014b50;
const LOC = 0x04034b50;

/** Reads the central directory (zip64 included). At most `maxEntries` entries are listed. */
/** Offset of the end-of-central-directory record (in the last 22 + 65535 bytes), or -1. */
function findEocd(d: Uint8Array): number {
  const from = Math.max(0, d.length - 22 - 65535);
  const tail = Buffer.from(d.buffer, d.byteOffset + from, d.length - from);
  // lastIndexOf is native; the record must leave room for its 22 bytes.
  let i = tail.lastIndexOf(EOCD_BYTES, tail.length - 22);
  while (i >= 0 && u32(d, from + i) !== EOCD) i = i > 0 ? tail.lastIndexOf(EOCD_BYTES, i - 1) : -1;
  return i < 0 ? -1 : from + i;
}

/**
 * Bytes prepended to a zip whose offsets do not count them: a self-extracting
 * stub (PE/ELF/script) concatenated in front. The central directory then
 * sits that many bytes after where the end record says (0 for plain zips and
 * for SFX files whose offsets were adjusted, `zip -A`).
 */
function prefixShift(d: Uint8Array, eocd: number, cdOffset: number, cdSize: number): number {
  const shift = eocd - (cdOffset + cdSize);
  if (shift > 0 && u32(d, cdOffset + shift) === CEN && (cdOffset + 4 > d.length || u32(d, cdOffset) !== CEN))
    return shift;
  return 0;
}

/**
 * A zip appended to something else (self-extracting archive: a stub, then
 * `PK\x03\x04…`): an end record whose central directory is found and does not
 * start at offset 0. Plain zips are recognised by their first bytes instead.
 */
export function hasEmbeddedZip(d: Uint8Array): boolean {
  if (d.length < 22 + 30) return false;
  const eocd = findEocd(d);
  if (eocd < 0) return false;
  const cdSize = u32(d, eocd + 12);
  const cdOffset = u32(d, eocd + 16);
  const at = cdOffset + prefixShift(d, eocd, cdOffset, cdSize);
  if (at + 46 > d.length || u32(d, at) !== CEN) return false;
  const local = u32(d, at + 42) + (at - cdOffset);
  return local > 0 && local + 30 <= d.length && u32(d, local) === LOC;
}

export function listZip(d: Uint8Array, maxEntries: number): ZipListing {
  const fail = (problem: string): ZipListing => ({
    entries: [],
    overlapping: false,
    truncated: false,
    problem,
  });
  // The end record is in the last 22 + 65535 (comment) bytes.
  const eocd = findEocd(d);
  if (eocd < 0) return fail("no end-of-central-directory record");
  let count = u16(d, eocd + 10);
  let cdSize = u32(d, eocd + 12);
  let cdOffset = u32(d, eocd + 16);
  if (eocd >= 20 && u32(d, eocd - 20) === ZIP64_LOCATOR) {
    const z64 = u64(d, eocd - 20 + 8);
    if (z64 + 56 <= d.length && u32(d, z64) === ZIP64_EOCD) {
      count = u64(d, z64 + 32);
      cdSize = u64(d, z64 + 40);
      cdOffset = u64(d, z64 + 48);
    }
  }
  // A self-extracting stub in front shifts every offset by its length.
  const shift = prefixShift(d, eocd, cdOffset, cdSize);
  cdOffset += shift;
  if (cdOffset + cdSize > d.length) return fail("central directory lies outside the file");
  const entries: ZipEntry[] = [];
  let p = cdOffset;
  const end = cdOffset + cdSize;
  let truncated = false;
  for (let i = 0; i < count; i++) {
    if (entries.length >= maxEntries) {
      truncated = true;
      break;
    }
    if (p + 46 > end || u32(d, p) !== CEN)
      return { entries, overlapping: false, truncated, problem: "bad central directory entry" };
    const flags = u16(d, p + 8);
    const method = u16(d, p + 10);
    let compressedSize = u32(d, p + 20);
    let size = u32(d, p + 24);
    const nameLen = u16(d, p + 28);
    const extraLen = u16(d, p + 30);
    const commentLen = u16(d, p + 32);
    let localOffset = u32(d, p + 42);
    const name = new TextDecoder().decode(d.subarray(p + 46, p + 46 + nameLen));
    // Zip64 extra field: the 0xffffffff fields, in order, are replaced by 64-bit ones.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = u16(d, x);
      const len = u16(d, x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        if (size === 0xffffffff && q + 8 <= x + 4 + len) {
          size = u64(d, q);
          q += 8;
        }
        if (compressedSize === 0xffffffff && q + 8 <= x + 4 + len) {
          compressedSize = u64(d, q);
          q += 8;
        }
        if (localOffset === 0xffffffff && q + 8 <= x + 4 + len) localOffset = u64(d, q);
      }
      x += 4 + len;
    }
    localOffset += shift;
    p = xEnd + commentLen;
    if (name.endsWith("/")) continue;
    if (localOffset + 30 > d.length || u32(d, localOffset) !== LOC) {
      return { entries, overlapping: false, truncated, problem: `member ${name}: bad local header` };
    }
    const dataOffset = localOffset + 30 + u16(d, localOffset + 26) + u16(d, localOffset + 28);
    entries.push({ name, method, flags, compressedSize, size, localOffset, dataOffset });
  }
  // Overlap: sort by local offset; each member must end before the next begins.
  const byOffset = [...entries].sort((a, b) => a.localOffset - b.localOffset);
  let overlapping = false;
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    if (prev.dataOffset + prev.compressedSize > byOffset[i]!.localOffset) {
      overlapping = true;
      break;
    }
  }
  return { entries, overlapping, truncated };
}

export interface TarMember {
  name: string;
  offset: number;
  size: number;
}

/** Regular-file members of a tar stream (ustar, GNU long names, pax path/size), as offsets into `d`. */
export function listTar(
  d: Uint8Array,
  maxEntries: number,
): { members: TarMember[]; truncated: boolean; problem?: string } {
  const members: TarMember[] = [];
  let p = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  const text = (o: number, n: number) => {
    const s = d.subarray(o, o + n);
    const z = s.indexOf(0);
    return new TextDecoder().decode(z < 0 ? s : s.subarray(0, z));
  };
  while (p + 512 <= d.length) {
    if (d[p] === 0) break; // end-of-archive block
    const size = paxSize ?? parseOctal(d, p + 124, 12);
    if (size === null) return { members, truncated: false, problem: `bad size field at ${p}` };
    const type = String.fromCharCode(d[p + 156]!);
    const dataStart = p + 512;
    if (dataStart + size > d.length) return { members, truncated: false, problem: "truncated member" };
    const prefix = text(p + 345, 155);
    const header = prefix ? `${prefix}/${text(p, 100)}` : text(p, 100);
    if (type === "L") {
      longName = text(dataStart, size);
    } else if (type === "x") {
      for (const rec of new TextDecoder().decode(d.subarray(dataStart, dataStart + size)).split("\n")) {
        const m = rec.match(/^\d+ (path|size)=(.*)$/);
        if (m?.[1] === "path") paxPath = m[2];
        if (m?.[1] === "size" && /^\d+$/.test(m[2]!)) paxSize = Number(m[2]);
      }
    } else {
      if (type === "0" || type === "\0" || type === "7") {
        if (members.length >= maxEntries) return { members, truncated: true };
        members.push({ name: paxPath ?? longName ?? header, offset: dataStart, size });
      }
      longName = paxPath = undefined;
      paxSize = undefined;
    }
    p = dataStart + Math.ceil(size / 512) * 512;
  }
  return { members, truncated: false };
}

export type Inflated =
  | { ok: true; data: Uint8Array; spilled: boolean }
  | { ok: false; reason: "limit"; produced: number }
  | { ok: false; reason: "corrupt"; message: string };

let spillSeq = 0;

/**
 * Inflates `input` (raw deflate or gzip), producing at most `limit` bytes.
 * Up to `memoryBytes` it stays in memory; beyond, the output goes to a
 * spill file in `spillDir` that is mapped and unlinked at once (the mapping
 * stays valid; nothing is left behind if the process dies).
 */
export async function inflateBounded(
  input: Uint8Array,
  format: "raw" | "gzip",
  limit: number,
  memoryBytes: number,
  spillDir: string,
): Promise<Inflated> {
  const inMemory = Math.min(limit, memoryBytes);
  const zlib = nodeZlib();
  try {
    const opts = { maxOutputLength: Math.max(1, inMemory) };
    const out = format === "raw" ? zlib.inflateRawSync(input, opts) : zlib.gunzipSync(input, opts);
    return { ok: true, data: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), spilled: false };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ERR_BUFFER_TOO_LARGE")
      return { ok: false, reason: "corrupt", message: (e as Error).message };
    if (inMemory >= limit) return { ok: false, reason: "limit", produced: inMemory };
  }
  return inflateToSpill(input, format, limit, spillDir);
}

async function inflateToSpill(
  input: Uint8Array,
  format: "raw" | "gzip",
  limit: number,
  spillDir: string,
): Promise<Inflated> {
  const zlib = nodeZlib();
  const path = join(spillDir, `inflate-${process.pid}-${++spillSeq}.spill`);
  const fd = openSync(path, "wx", 0o600);
  let produced = 0;
  let over = false;
  let failure: string | undefined;
  try {
    const z = format === "raw" ? zlib.createInflateRaw() : zlib.createGunzip();
    await new Promise<void>((resolve) => {
      z.on("data", (chunk: Buffer) => {
        if (over) return;
        const room = limit - produced;
        if (chunk.length > room) {
          over = true;
          produced = limit;
          z.destroy();
          resolve();
          return;
        }
        writeSync(fd, chunk);
        produced += chunk.length;
      });
      z.on("error", (e) => {
        failure = e.message;
        resolve();
      });
      z.on("end", () => resolve());
      z.on("close", () => resolve());
      const step = 1 << 20;
      for (let o = 0; o < input.length; o += step) z.write(input.subarray(o, o + step));
      z.end();
    });
  } finally {
    closeSync(fd);
  }
  try {
    if (over) return { ok: false, reason: "limit", produced };
    if (failure !== undefined) return { ok: false, reason: "corrupt", message: failure };
    const data = produced === 0 ? new Uint8Array(0) : Bun.mmap(path, { shared: false });
    return { ok: true, data, spilled: true };
  } finally {
    unlinkSync(path);
  }
}
