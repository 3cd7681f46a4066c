/**
 * What an object is, from its first bytes, and for executables the facts
 * ClamAV offsets refer to: the entry point (`EP±n`) and section start
 * offsets (`Sx+n`, `SL+n`, `SEx`), computed the way ClamAV computes them so
 * the same `.ndb` line matches the same bytes (docs/scanning.md). Parsers
 * are defensive: every field is range-checked and a malformed header makes
 * the object "not an executable", never an exception.
 */

export type ObjectKind = "pe" | "elf" | "macho" | "pdf" | "zip" | "gzip" | "tar" | "other";

export interface Section {
  /** File offset of the section's raw data. */
  offset: number;
  size: number;
}

export interface ExeInfo {
  kind: "pe" | "elf" | "macho";
  /** File offset of the entry point, or null when it cannot be mapped to the file. */
  entry: number | null;
  sections: Section[];
  /** PE only: where the Authenticode hash must skip, and the certificate table. */
  pe?: {
    checksumOffset: number;
    securityDirOffset: number;
    certTable: { offset: number; size: number } | null;
  };
}

function u16(d: Uint8Array, o: number, le = true): number {
  return le ? d[o]! | (d[o + 1]! << 8) : (d[o]! << 8) | d[o + 1]!;
}
function u32(d: Uint8Array, o: number, le = true): number {
  return le
    ? (d[o]! | (d[o + 1]! << 8) | (d[o + 2]! << 16) | (d[o + 3]! << 24)) >>> 0
    : ((d[o]! << 24) | (d[o + 1]! << 16) | (d[o + 2]! << 8) | d[o + 3]!) >>> 0;
}
function u64(d: Uint8Array, o: number, le = true): number {
  const lo = le ? u32(d, o) : u32(d, o + 4, false);
  const hi = le ? u32(d, o + 4) : u32(d, o, false);
  // Offsets beyond 2^53 cannot be file offsets; make them impossible rather than imprecise.
  return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 2 ** 32 + lo;
}

function startsWith(d: Uint8Array, magic: number[], at = 0): boolean {
  if (d.length < at + magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (d[at + i] !== magic[i]) return false;
  return true;
}

function isTarHeader(d: Uint8Array): boolean {
  if (d.length < 512) return false;
  if (startsWith(d, [0x75, 0x73, 0x74, 0x61, 0x72], 257)) return true; // "ustar"
  // Pre-POSIX tar: no magic, but the header checksum must add up.
  const stored = parseOctal(d, 148, 8);
  if (stored === null || d[0] === 0) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : d[i]!;
  return sum === stored;
}

export function parseOctal(d: Uint8Array, off: number, len: number): number | null {
  let v = 0;
  let seen = false;
  for (let i = off; i < off + len; i++) {
    const c = d[i]!;
    if (c === 0 || c === 0x20) {
      if (seen) break;
      continue;
    }
    if (c < 0x30 || c > 0x37) return null;
    v = v * 8 + (c - 0x30);
    seen = true;
  }
  return seen ? v : null;
}

export function detectKind(d: Uint8Array): ObjectKind {
  if (startsWith(d, [0x4d, 0x5a]) && parsePe(d)) return "pe";
  if (startsWith(d, [0x7f, 0x45, 0x4c, 0x46])) return "elf";
  if (
    startsWith(d, [0xfe, 0xed, 0xfa, 0xce]) ||
    startsWith(d, [0xce, 0xfa, 0xed, 0xfe]) ||
    startsWith(d, [0xfe, 0xed, 0xfa, 0xcf]) ||
    startsWith(d, [0xcf, 0xfa, 0xed, 0xfe])
  ) {
    return "macho";
  }
  if (startsWith(d, [0x50, 0x4b, 0x03, 0x04]) || startsWith(d, [0x50, 0x4b, 0x05, 0x06])) return "zip";
  if (startsWith(d, [0x1f, 0x8b, 0x08])) return "gzip";
  if (isTarHeader(d)) return "tar";
  // ClamAV accepts the PDF header anywhere in the first KiB.
  const head = d.subarray(0, 1024);
  const pdf = Buffer.from(head.buffer, head.byteOffset, head.byteLength).indexOf("%PDF-");
  if (pdf >= 0) return "pdf";
  return "other";
}

export function parseExecutable(d: Uint8Array, kind: ObjectKind): ExeInfo | null {
  if (kind === "pe") return parsePe(d);
  if (kind === "elf") return parseElf(d);
  if (kind === "macho") return { kind: "macho", entry: null, sections: [] };
  return null;
}

/** PE/COFF (PE32 and PE32+). Section raw offsets are aligned down to FileAlignment, as ClamAV does. */
export function parsePe(d: Uint8Array): ExeInfo | null {
  if (d.length < 0x40 || d[0] !== 0x4d || d[1] !== 0x5a) return null;
  const pe = u32(d, 0x3c);
  if (pe + 24 > d.length || !startsWith(d, [0x50, 0x45, 0, 0], pe)) return null;
  const nsections = u16(d, pe + 6);
  const optSize = u16(d, pe + 20);
  const opt = pe + 24;
  if (opt + optSize > d.length || optSize < 2) return null;
  const magic = u16(d, opt);
  if (magic !== 0x10b && magic !== 0x20b) return null;
  const plus = magic === 0x20b;
  if (optSize < (plus ? 112 : 96)) return null;
  const entryRva = u32(d, opt + 16);
  const fileAlign = u32(d, opt + 36);
  const ndirs = u32(d, opt + (plus ? 108 : 92));
  const dirs = opt + (plus ? 112 : 96);
  const securityDirOffset = dirs + 4 * 8;
  let certTable: { offset: number; size: number } | null = null;
  if (ndirs > 4 && securityDirOffset + 8 <= opt + optSize) {
    const off = u32(d, securityDirOffset);
    const size = u32(d, securityDirOffset + 4);
    if (off > 0 && size > 0 && off + size <= d.length) certTable = { offset: off, size };
  }
  const align =
    fileAlign >= 0x200 && fileAlign <= 0x10000 && (fileAlign & (fileAlign - 1)) === 0 ? fileAlign : 1;
  const secTable = opt + optSize;
  const sections: Section[] = [];
  const mapping: { va: number; vsize: number; raw: number }[] = [];
  for (let i = 0; i < Math.min(nsections, 96); i++) {
    const s = secTable + 40 * i;
    if (s + 40 > d.length) return null;
    const vsize = u32(d, s + 8);
    const va = u32(d, s + 12);
    const rawSize = u32(d, s + 16);
    const raw = Math.floor(u32(d, s + 20) / align) * align;
    sections.push({ offset: raw, size: rawSize });
    mapping.push({ va, vsize: Math.max(vsize, rawSize), raw });
  }
  let entry: number | null = null;
  const firstVa = mapping.length ? Math.min(...mapping.map((m) => m.va)) : Infinity;
  if (entryRva < firstVa) entry = entryRva < d.length ? entryRva : null;
  else {
    for (const m of mapping) {
      if (entryRva >= m.va && entryRva < m.va + m.vsize) {
        entry = m.raw + (entryRva - m.va);
        break;
      }
    }
  }
  return {
    kind: "pe",
    entry,
    sections,
    pe: { checksumOffset: opt + 64, securityDirOffset, certTable },
  };
}

/** ELF32/ELF64, either byte order. The entry point maps through the first program header containing it. */
export function parseElf(d: Uint8Array): ExeInfo | null {
  if (d.length < 52 || !startsWith(d, [0x7f, 0x45, 0x4c, 0x46])) return null;
  const cls = d[4];
  const le = d[5] !== 2;
  if (cls !== 1 && cls !== 2) return null;
  const is64 = cls === 2;
  if (is64 && d.length < 64) return null;
  const entryVa = is64 ? u64(d, 24, le) : u32(d, 24, le);
  const phoff = is64 ? u64(d, 32, le) : u32(d, 28, le);
  const shoff = is64 ? u64(d, 40, le) : u32(d, 32, le);
  const phentsize = u16(d, is64 ? 54 : 42, le);
  const phnum = u16(d, is64 ? 56 : 44, le);
  const shentsize = u16(d, is64 ? 58 : 46, le);
  const shnum = u16(d, is64 ? 60 : 48, le);

  let entry: number | null = null;
  if (phnum > 0 && phentsize >= (is64 ? 56 : 32) && phoff + phnum * phentsize <= d.length) {
    for (let i = 0; i < phnum; i++) {
      const p = phoff + i * phentsize;
      const off = is64 ? u64(d, p + 8, le) : u32(d, p + 4, le);
      const vaddr = is64 ? u64(d, p + 16, le) : u32(d, p + 8, le);
      const memsz = is64 ? u64(d, p + 40, le) : u32(d, p + 20, le);
      if (vaddr <= entryVa && vaddr + memsz > entryVa) {
        const e = entryVa - vaddr + off;
        entry = e < d.length ? e : null;
        break;
      }
    }
  }
  const sections: Section[] = [];
  if (shnum > 0 && shentsize >= (is64 ? 64 : 40) && shoff + shnum * shentsize <= d.length) {
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      const off = is64 ? u64(d, s + 24, le) : u32(d, s + 16, le);
      const size = is64 ? u64(d, s + 32, le) : u32(d, s + 20, le);
      sections.push({ offset: off, size });
    }
  }
  return { kind: "elf", entry, sections };
}
