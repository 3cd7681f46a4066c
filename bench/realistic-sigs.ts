/**
 * Realistic body signatures for the scan benchmarks: real signature sets
 * are largely cut from the machine code of the malware they detect, and
 * machine code is full of the same few x86 sequences (`0f1f8400` NOPs,
 * `85c00f84` test/je, `4889c7e8` mov/call). Random-byte bodies (testutil's
 * default) hide that: any 4 bytes of random data are rare. Here a share of
 * the bodies (40 % by default) have their fixed bytes cut from the `.text`
 * sections of this machine's shared libraries — not of /usr/bin, which the
 * benchmarks scan, so most of them do not simply occur in the corpus.
 */
import { closeSync, lstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { type GeneratedSet, generateSignatureSet, type Rng } from "../handlers/DatasetA/testutil.ts";

const u16 = (d: Uint8Array, o: number) => d[o]! | (d[o + 1]! << 8);
const u32 = (d: Uint8Array, o: number) =>
  (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0;
const u64 = (d: Uint8Array, o: number) => u32(d, o) + u32(d, o + 4) * 2 ** 32;

/** The `.text` section of a 64-bit little-endian ELF file, or null. */
export function elfText(d: Uint8Array): Uint8Array | null {
  if (d.length < 64 || u32(d, 0) !== 0x464c457f || d[4] !== 2 || d[5] !== 1) return null;
  const shoff = u64(d, 0x28);
  const shentsize = u16(d, 0x3a);
  const shnum = u16(d, 0x3c);
  const shstrndx = u16(d, 0x3e);
  if (shentsize < 64 || shoff + shnum * shentsize > d.length || shstrndx >= shnum) return null;
  const strOff = u64(d, shoff + shstrndx * shentsize + 0x18);
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize;
    const nameAt = strOff + u32(d, h);
    const name = Buffer.from(d.subarray(nameAt, nameAt + 6)).toString("latin1");
    if (name !== ".text\0") continue;
    const off = u64(d, h + 0x18);
    const size = u64(d, h + 0x20);
    return off + size <= d.length ? d.subarray(off, off + size) : null;
  }
  return null;
}

/** Up to `maxBytes` of `.text` from the ELF libraries under `dir` (sorted: deterministic). */
export function machineCodePool(
  maxBytes = 64 * 1024 * 1024,
  dir = "/usr/lib/x86_64-linux-gnu",
): Uint8Array[] {
  const pool: Uint8Array[] = [];
  let total = 0;
  for (const name of readdirSync(dir).sort()) {
    if (total >= maxBytes) break;
    const p = join(dir, name);
    const st = lstatSync(p);
    if (!st.isFile() || st.size < 4096 || st.size > 64 * 1024 * 1024) continue;
    const d = new Uint8Array(st.size);
    const fd = openSync(p, "r");
    try {
      readSync(fd, d, 0, st.size, 0);
    } finally {
      closeSync(fd);
    }
    const text = elfText(d);
    if (!text || text.length < 4096) continue;
    pool.push(text);
    total += text.length;
  }
  if (pool.length === 0) throw new Error(`no ELF .text sections under ${dir}`);
  return pool;
}

/** generateSignatureSet with `codeShare` of the bodies cut from real machine code. */
export function realisticSignatureSet(
  seed: number,
  hashCount: number,
  bodyCount: number,
  opts: { hashBacked?: number; prefix?: string; codeShare?: number; pool?: Uint8Array[] } = {},
): GeneratedSet {
  const pool = opts.pool ?? machineCodePool();
  const share = opts.codeShare ?? 0.4;
  const cut = (rng: Rng) => (n: number) => {
    const text = pool[rng.int(pool.length)]!;
    const at = rng.int(text.length - n);
    return text.slice(at, at + n);
  };
  return generateSignatureSet(seed, hashCount, bodyCount, {
    hashBacked: opts.hashBacked,
    prefix: opts.prefix,
    // Every k-th body so the share is exact and spread over the set.
    bodyBytes: (i, rng) => (Math.floor((i + 1) * share) > Math.floor(i * share) ? cut(rng) : undefined),
  });
}
