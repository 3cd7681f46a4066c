/**
 * Feature extraction, version 1: what the agent computes from a scanned
 * object's bytes and hands to every model as a Float32Array. Models declare
 * the `featureVersion` they were trained on; the agent refuses a model whose
 * version it does not implement or whose `features_len()` differs from the
 * version's length (rules M7, M11), so extractor and model always agree.
 * Adding or reordering a feature means a new version, never an edit of v1.
 *
 * Every value is scaled to roughly [0, 1]; parsing is bounds-checked and a
 * malformed header only sets `malformed`. The list is documented in
 * docs/ml.md ("Features").
 */
import { detectKind, parseExecutable } from "../_shared/filetype/filetype.ts";

export const FEATURES_V1 = [
  "log_size", // log2(size + 1) / 32
  "entropy", // Shannon entropy of all bytes / 8
  ...Array.from({ length: 16 }, (_, i) => `hist_${i.toString(16)}x`), // share of bytes 0xN0..0xNF
  "printable", // share of bytes 0x20..0x7e, \t \n \r
  "zeros", // share of 0x00
  "win_entropy_max", // highest entropy of a 4 KiB window / 8
  "win_entropy_min", // lowest / 8
  "win_high_share", // share of windows above 7.2 bits/byte (packed or encrypted)
  "kind_elf",
  "kind_pe",
  "kind_script", // starts with "#!"
  "exe_sections", // section count / 64 (ELF or PE)
  "exe_wx", // a segment (ELF) or section (PE) both writable and executable
  "exe_entry_outside", // entry point not inside any section's file range
  "exe_imports", // ELF: log2(dynamic symbols + 1)/16; PE: log2(import directory size + 1)/16
  "exe_overlay", // share of the file after the last section's end
  "str_density", // printable strings (≥ 5 chars) per KiB / 64
  "str_mean_len", // mean string length / 64
  "str_urls", // log2(count of "http://" / "https://" in the first MiB + 1) / 8
  "str_suspicious", // log2(count of SUSPICIOUS_TOKENS in the first MiB + 1) / 8
  "b64_run", // longest run of base64 alphabet / min(size, 64 KiB)
  "malformed", // a recognised executable header that does not parse
] as const;

export const FEATURE_VERSIONS: Record<number, { length: number; extract: (d: Uint8Array) => Float32Array }> =
  {
    1: { length: FEATURES_V1.length, extract: extractV1 },
  };

/** Tokens droppers, miners and reverse shells tend to carry. */
export const SUSPICIOUS_TOKENS = [
  "/bin/sh -i",
  "/dev/tcp/",
  "nc -e",
  "wget http",
  "curl http",
  "| sh",
  "|sh",
  "chmod +x",
  "chmod 777",
  "base64 -d",
  "eval(",
  "LD_PRELOAD",
  "crontab",
  "stratum+tcp",
  "xmrig",
  "/etc/shadow",
  "ptrace",
  "rm -rf /",
].map((t) => new TextEncoder().encode(t));

const WINDOW = 4096;
export const TOKEN_SPAN = 1024 * 1024;

function entropy(counts: Uint32Array, n: number): number {
  if (n === 0) return 0;
  let h = 0;
  for (let i = 0; i < 256; i++) {
    const c = counts[i]!;
    if (c) {
      const p = c / n;
      h -= p * Math.log2(p);
    }
  }
  return h;
}

/** Per-byte class bits, so the one pass over the bytes does table lookups only. */
const PRINTABLE = 1;
const B64 = 2;
const CLASS = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  if ((b >= 0x20 && b < 0x7f) || b === 9 || b === 10 || b === 13) CLASS[b]! |= PRINTABLE;
  if (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2b ||
    b === 0x2f
  )
    CLASS[b]! |= B64;
}

const HTTP = [new TextEncoder().encode("http://"), new TextEncoder().encode("https://")];

/** Occurrences of `t` in `d`, by Buffer.indexOf (native substring search, GB/s). */
function countToken(d: Buffer, t: Uint8Array): number {
  let n = 0;
  for (let i = d.indexOf(t); i !== -1; i = d.indexOf(t, i + 1)) n++;
  return n;
}

/** ELF: any PT_LOAD with PF_W|PF_X; and the dynamic symbol count from .dynsym's size. */
function elfExtras(d: Uint8Array): { wx: boolean; dynsyms: number } {
  const le = d[5] !== 2;
  const is64 = d[4] === 2;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const u16 = (o: number) => dv.getUint16(o, le);
  const u32 = (o: number) => dv.getUint32(o, le);
  const uN = (o: number) => (is64 ? Number(dv.getBigUint64(o, le)) : u32(o));
  let wx = false;
  const phoff = uN(is64 ? 32 : 28);
  const phent = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  if (phnum && phoff + phnum * phent <= d.length)
    for (let i = 0; i < phnum; i++) {
      const p = phoff + i * phent;
      const flags = u32(is64 ? p + 4 : p + 24);
      if (u32(p) === 1 && (flags & 3) === 3) wx = true;
    }
  let dynsyms = 0;
  const shoff = uN(is64 ? 40 : 32);
  const shent = u16(is64 ? 58 : 46);
  const shnum = u16(is64 ? 60 : 48);
  if (shnum && shoff + shnum * shent <= d.length)
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shent;
      if (u32(s + 4) === 11) {
        const size = uN(is64 ? s + 32 : s + 20);
        const ent = uN(is64 ? s + 56 : s + 36);
        if (ent) dynsyms += Math.floor(size / ent);
      }
    }
  return { wx, dynsyms };
}

/** PE: a section with IMAGE_SCN_MEM_EXECUTE and IMAGE_SCN_MEM_WRITE; the import directory's size. */
function peExtras(d: Uint8Array): { wx: boolean; importBytes: number } {
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const pe = dv.getUint32(0x3c, true);
  const nsec = dv.getUint16(pe + 6, true);
  const optSize = dv.getUint16(pe + 20, true);
  const opt = pe + 24;
  const is64 = dv.getUint16(opt, true) === 0x20b;
  const dirs = opt + (is64 ? 112 : 96);
  const importBytes = dirs + 16 <= d.length ? dv.getUint32(dirs + 12, true) : 0;
  let wx = false;
  const sec = opt + optSize;
  for (let i = 0; i < nsec && sec + (i + 1) * 40 <= d.length; i++) {
    const ch = dv.getUint32(sec + i * 40 + 36, true);
    if ((ch & 0x20000000) !== 0 && (ch & 0x80000000) !== 0) wx = true;
  }
  return { wx, importBytes };
}

export function extractV1(d: Uint8Array): Float32Array {
  const f = new Float32Array(FEATURES_V1.length);
  const n = d.length;
  // One pass: window histograms (summed into the whole-file one), printable strings, base64 runs.
  const counts = new Uint32Array(256);
  const wc = new Uint32Array(256);
  let wmax = 0;
  let wmin = n ? 8 : 0;
  let high = 0;
  let windows = 0;
  let strings = 0;
  let strChars = 0;
  let run = 0;
  let b64 = 0;
  let b64max = 0;
  for (let off = 0; off < n; off += WINDOW) {
    const end = Math.min(n, off + WINDOW);
    for (let i = off; i < end; i++) {
      const b = d[i]!;
      wc[b]!++;
      const c = CLASS[b]!;
      if (c & PRINTABLE) run++;
      else {
        if (run >= 5) {
          strings++;
          strChars += run;
        }
        run = 0;
      }
      if (c & B64) {
        if (++b64 > b64max) b64max = b64;
      } else b64 = 0;
    }
    // A short tail window says little about packing: it counts for the histogram only.
    if (end - off >= 256 || windows === 0) {
      const h = entropy(wc, end - off);
      if (h > wmax) wmax = h;
      if (h < wmin) wmin = h;
      if (h > 7.2) high++;
      windows++;
    }
    for (let b = 0; b < 256; b++) {
      counts[b]! += wc[b]!;
      wc[b] = 0;
    }
  }
  if (run >= 5) {
    strings++;
    strChars += run;
  }
  let k = 0;
  f[k++] = Math.log2(n + 1) / 32;
  f[k++] = entropy(counts, n) / 8;
  for (let hi = 0; hi < 16; hi++) {
    let c = 0;
    for (let lo = 0; lo < 16; lo++) c += counts[hi * 16 + lo]!;
    f[k++] = n ? c / n : 0;
  }
  let printable = 0;
  for (let b = 0; b < 256; b++) if (CLASS[b]! & PRINTABLE) printable += counts[b]!;
  f[k++] = n ? printable / n : 0;
  f[k++] = n ? counts[0]! / n : 0;
  f[k++] = wmax / 8;
  f[k++] = wmin / 8;
  f[k++] = windows ? high / windows : 0;

  const kind = detectKind(d);
  const script = n > 2 && d[0] === 0x23 && d[1] === 0x21;
  f[k++] = kind === "elf" ? 1 : 0;
  f[k++] = kind === "pe" ? 1 : 0;
  f[k++] = script ? 1 : 0;

  let malformed = 0;
  let sections = 0;
  let wx = 0;
  let entryOutside = 0;
  let imports = 0;
  let overlay = 0;
  if (kind === "elf" || kind === "pe") {
    try {
      const exe = parseExecutable(d, kind);
      if (!exe) malformed = 1;
      else {
        sections = exe.sections.length;
        const inSection = exe.sections.some(
          (s) => exe.entry !== null && exe.entry >= s.offset && exe.entry < s.offset + s.size,
        );
        entryOutside = exe.sections.length && !inSection ? 1 : 0;
        const last = exe.sections.reduce((m, s) => Math.max(m, s.offset + s.size), 0);
        overlay = kind === "pe" && last > 0 && last < n ? (n - last) / n : 0;
        if (kind === "elf") {
          const x = elfExtras(d);
          wx = x.wx ? 1 : 0;
          imports = Math.log2(x.dynsyms + 1) / 16;
        } else {
          const x = peExtras(d);
          wx = x.wx ? 1 : 0;
          imports = Math.log2(x.importBytes + 1) / 16;
        }
      }
    } catch {
      malformed = 1;
    }
  }
  f[k++] = Math.min(1, sections / 64);
  f[k++] = wx;
  f[k++] = entryOutside;
  f[k++] = imports;
  f[k++] = overlay;

  f[k++] = n ? Math.min(1, strings / (n / 1024) / 64) : 0;
  f[k++] = strings ? Math.min(1, strChars / strings / 64) : 0;
  // Tokens are searched in the first TOKEN_SPAN bytes only: droppers put them up front, and 20
  // substring searches over a large binary would cost more than everything else here together.
  const buf = Buffer.from(d.buffer, d.byteOffset, Math.min(d.byteLength, TOKEN_SPAN));
  const urls = countToken(buf, HTTP[0]!) + countToken(buf, HTTP[1]!);
  f[k++] = Math.log2(urls + 1) / 8;
  let sus = 0;
  for (const t of SUSPICIOUS_TOKENS) sus += countToken(buf, t);
  f[k++] = Math.log2(sus + 1) / 8;
  f[k++] = n ? Math.min(1, b64max / Math.min(n, 65536)) : 0;
  f[k++] = malformed;
  return f;
}
