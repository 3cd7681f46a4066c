/**
 * Generators shared by the DatasetA tests and bench/scan.ts: deterministic
 * signature sets in ClamAV syntax (so clamscan reads the very same files),
 * objects that contain instances of them, small zip/tar/gzip writers, and a
 * clamscan runner for cross-checks.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import zlib from "node:zlib";

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let s = this.s;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.s = s >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export interface GeneratedBodySig {
  name: string;
  line: string;
  /** A byte string that matches the signature (wildcards filled in). */
  instance: Uint8Array;
}

/**
 * A body signature of one of several shapes: plain hex, `??`, nibbles,
 * bounded gaps, alternatives and `*`. `instance` is bytes that match it.
 */
export function randomBodySig(
  rng: Rng,
  name: string,
  body: (n: number) => Uint8Array = (n) => rng.bytes(n),
): GeneratedBodySig {
  const shape = rng.int(6);
  const a = body(6 + rng.int(6));
  const b = body(4 + rng.int(4));
  const filler = (n: number) => rng.bytes(n).map((x) => x | 0x80);
  let sig: string;
  let inst: Uint8Array;
  switch (shape) {
    case 0:
      sig = hex(a) + hex(b);
      inst = Uint8Array.from([...a, ...b]);
      break;
    case 1: {
      const f = filler(2);
      sig = `${hex(a)}????${hex(b)}`;
      inst = Uint8Array.from([...a, ...f, ...b]);
      break;
    }
    case 2: {
      const gap = 2 + rng.int(5);
      sig = `${hex(a)}{2-8}${hex(b)}`;
      inst = Uint8Array.from([...a, ...filler(gap), ...b]);
      break;
    }
    case 3: {
      const alt = rng.bytes(2);
      const other = rng.bytes(2);
      sig = `${hex(a)}(${hex(other)}|${hex(alt)})${hex(b)}`;
      inst = Uint8Array.from([...a, ...alt, ...b]);
      break;
    }
    case 4:
      sig = `${hex(a)}*${hex(b)}`;
      inst = Uint8Array.from([...a, ...filler(50 + rng.int(200)), ...b]);
      break;
    default: {
      const n = rng.bytes(1)[0]!;
      sig = `${hex(a)}${(n >> 4).toString(16)}?${hex(b)}`;
      inst = Uint8Array.from([...a, (n & 0xf0) | 0x07, ...b]);
    }
  }
  return { name, line: `${name}:0:*:${sig}`, instance: inst };
}

export interface GeneratedSet {
  hsb: string;
  ndb: string;
  body: GeneratedBodySig[];
  hashes: { name: string; sha256: string; size: number; data?: Uint8Array }[];
}

/**
 * `hashCount` SHA-256 signatures (the first `hashBacked` of them for objects
 * returned in `data`) and `bodyCount` body signatures.
 */
export function generateSignatureSet(
  seed: number,
  hashCount: number,
  bodyCount: number,
  opts: {
    hashBacked?: number;
    prefix?: string;
    /** Where the fixed bytes of body `i` come from (default: random); bench/realistic-sigs.ts cuts real code. */
    bodyBytes?: (i: number, rng: Rng) => ((n: number) => Uint8Array) | undefined;
  } = {},
): GeneratedSet {
  const rng = new Rng(seed);
  const prefix = opts.prefix ?? "Gen";
  const hashes: GeneratedSet["hashes"] = [];
  for (let i = 0; i < hashCount; i++) {
    if (i < (opts.hashBacked ?? 0)) {
      const data = rng.bytes(64 + rng.int(4000));
      hashes.push({
        name: `${prefix}.Hash.${i}`,
        sha256: createHash("sha256").update(data).digest("hex"),
        size: data.length,
        data,
      });
    } else {
      hashes.push({
        name: `${prefix}.Hash.${i}`,
        sha256: hex(rng.bytes(32)),
        size: 100 + rng.int(1_000_000),
      });
    }
  }
  const body = Array.from({ length: bodyCount }, (_, i) =>
    randomBodySig(rng, `${prefix}.Body.${i}`, opts.bodyBytes?.(i, rng)),
  );
  return {
    hsb: `${hashes.map((h) => `${h.sha256}:${h.size}:${h.name}`).join("\n")}\n`,
    ndb: `${body.map((b) => b.line).join("\n")}\n`,
    body,
    hashes,
  };
}

/** Copies `instance` into `into` at `at`. */
export function implant(into: Uint8Array, instance: Uint8Array, at: number): Uint8Array {
  into.set(instance, at);
  return into;
}

// ---------------------------------------------------------------------------
// Container writers (tests build real archives, including bombs).

function crc32(data: Uint8Array): number {
  return zlib.crc32(data) >>> 0;
}

export interface ZipInput {
  name: string;
  data?: Uint8Array;
  /** Pre-compressed deflate stream and the size it inflates to (to build bombs cheaply). */
  deflated?: { stream: Uint8Array; size: number; crc: number };
  store?: boolean;
}

/** A plain zip writer (store or deflate), enough to make test archives. */
export function writeZip(entries: ZipInput[]): Uint8Array {
  const locals: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    let method: number;
    let body: Uint8Array;
    let size: number;
    let crc: number;
    if (e.deflated) {
      method = 8;
      body = e.deflated.stream;
      size = e.deflated.size;
      crc = e.deflated.crc;
    } else {
      const data = e.data ?? new Uint8Array(0);
      size = data.length;
      crc = crc32(data);
      if (e.store) {
        method = 0;
        body = data;
      } else {
        method = 8;
        body = new Uint8Array(zlib.deflateRawSync(data));
      }
    }
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(method, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(size, 22);
    lh.writeUInt16LE(name.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(method, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(body.length, 20);
    ch.writeUInt32LE(size, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(offset, 42);
    locals.push(lh, name, body);
    central.push(ch, name);
    offset += 30 + name.length + body.length;
  }
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, ...central, end]));
}

/**
 * An overlapping-member zip (the non-recursive bomb construction): `count`
 * central entries all pointing at one local header and one deflate stream.
 */
export function writeOverlappingZip(
  stream: Uint8Array,
  size: number,
  crc: number,
  count: number,
): Uint8Array {
  const name = new TextEncoder().encode("k");
  const lh = Buffer.alloc(30);
  lh.writeUInt32LE(0x04034b50, 0);
  lh.writeUInt16LE(20, 4);
  lh.writeUInt16LE(8, 8);
  lh.writeUInt32LE(crc, 14);
  lh.writeUInt32LE(stream.length, 18);
  lh.writeUInt32LE(size, 22);
  lh.writeUInt16LE(1, 26);
  const local = Buffer.concat([lh, name, stream]);
  const centrals: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(8, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(stream.length, 20);
    ch.writeUInt32LE(size, 24);
    ch.writeUInt16LE(1, 28);
    ch.writeUInt32LE(0, 42);
    centrals.push(ch, Buffer.from(name));
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(local.length, 16);
  return new Uint8Array(Buffer.concat([local, cd, end]));
}

export function gzip(data: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.gzipSync(data));
}

// ---------------------------------------------------------------------------
// clamscan as a reference implementation.

export function clamscanAvailable(): boolean {
  return Bun.which("clamscan") !== null;
}

/** Runs `clamscan --allmatch -d DB… -r PATH`; returns file → detection names (".UNOFFICIAL" stripped). */
export function clamscan(dbFiles: string[], target: string, extra: string[] = []): Map<string, Set<string>> {
  const r = Bun.spawnSync(
    [
      "clamscan",
      "--no-summary",
      "--allmatch",
      "--stdout",
      ...dbFiles.flatMap((d) => ["-d", d]),
      ...extra,
      "-r",
      target,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const found = new Map<string, Set<string>>();
  for (const line of r.stdout.toString().split("\n")) {
    const m = line.match(/^(.*): (\S+?)(?:\.UNOFFICIAL)? FOUND$/);
    if (!m) continue;
    const set = found.get(m[1]!) ?? new Set<string>();
    set.add(m[2]!);
    found.set(m[1]!, set);
  }
  return found;
}

/** Files clamscan reports infected by default (first match per file, no --allmatch). */
export function clamscanFirst(dbFiles: string[], target: string): Set<string> {
  const r = Bun.spawnSync(
    [
      "clamscan",
      "--no-summary",
      "--infected",
      "--stdout",
      ...dbFiles.flatMap((d) => ["-d", d]),
      "-r",
      target,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const found = new Set<string>();
  for (const line of r.stdout.toString().split("\n")) {
    const m = line.match(/^(.*): \S+ FOUND$/);
    if (m) found.add(m[1]!);
  }
  return found;
}

/**
 * A minimal, well-formed PE32 executable: headers, `.text` (entry point 0x10
 * bytes in) and `.data`, file alignment 0x200. Big enough for clamscan and
 * osslsigncode to treat as a real PE.
 */
export function buildPe(opts: { text?: Uint8Array; data?: Uint8Array } = {}): Uint8Array {
  const f = Buffer.alloc(0x600);
  f.write("MZ", 0, "latin1");
  f.writeUInt32LE(0x80, 0x3c);
  f.write("PE\0\0", 0x80, "latin1");
  const coff = 0x84;
  f.writeUInt16LE(0x14c, coff);
  f.writeUInt16LE(2, coff + 2);
  f.writeUInt16LE(0xe0, coff + 16);
  f.writeUInt16LE(0x0102, coff + 18);
  const opt = 0x98;
  f.writeUInt16LE(0x10b, opt);
  f.writeUInt32LE(0x200, opt + 4); // SizeOfCode
  f.writeUInt32LE(0x1010, opt + 16); // AddressOfEntryPoint
  f.writeUInt32LE(0x1000, opt + 20);
  f.writeUInt32LE(0x2000, opt + 24);
  f.writeUInt32LE(0x400000, opt + 28);
  f.writeUInt32LE(0x1000, opt + 32);
  f.writeUInt32LE(0x200, opt + 36);
  f.writeUInt16LE(4, opt + 40);
  f.writeUInt16LE(4, opt + 48);
  f.writeUInt32LE(0x3000, opt + 56); // SizeOfImage
  f.writeUInt32LE(0x200, opt + 60); // SizeOfHeaders
  f.writeUInt16LE(3, opt + 68); // console subsystem
  f.writeUInt32LE(0x100000, opt + 72);
  f.writeUInt32LE(0x1000, opt + 76);
  f.writeUInt32LE(0x100000, opt + 80);
  f.writeUInt32LE(0x1000, opt + 84);
  f.writeUInt32LE(16, opt + 92);
  const sec = opt + 0xe0;
  const section = (at: number, name: string, va: number, raw: number, flags: number) => {
    f.write(name, at, "latin1");
    f.writeUInt32LE(0x200, at + 8);
    f.writeUInt32LE(va, at + 12);
    f.writeUInt32LE(0x200, at + 16);
    f.writeUInt32LE(raw, at + 20);
    f.writeUInt32LE(flags >>> 0, at + 36);
  };
  section(sec, ".text", 0x1000, 0x200, 0x60000020);
  section(sec + 40, ".data", 0x2000, 0x400, 0xc0000040);
  const text = opts.text ?? new Uint8Array([0x55, 0x89, 0xe5, 0x31, 0xc0, 0x5d, 0xc3]);
  f.set(text.subarray(0, 0x1f0), 0x210);
  f.set((opts.data ?? new TextEncoder().encode("outpost test data section")).subarray(0, 0x200), 0x400);
  return new Uint8Array(f);
}

function sh(cmd: string[], cwd: string): string {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/**
 * A PE signed by osslsigncode with a fresh self-signed certificate from openssl (`keyArgs`: e.g.
 * `-newkey rsa:2048`), written to DIR/NAME-signed.exe; the thumbprint is the certificate's SHA-256.
 */
export function signedPe(
  dir: string,
  keyArgs: string[],
  name: string,
): { signed: Uint8Array; thumbprint: string } {
  sh(
    [
      "openssl",
      "req",
      "-x509",
      "-nodes",
      ...keyArgs,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-subj",
      `/CN=${name} Publisher/O=Outpost Tests`,
      "-days",
      "30",
    ],
    dir,
  );
  writeFileSync(
    join(dir, `${name}.exe`),
    buildPe({ text: Buffer.from("5589e583ec10c745fc2a000000c9c3", "hex") }),
  );
  sh(
    [
      "osslsigncode",
      "sign",
      "-certs",
      `${name}.pem`,
      "-key",
      `${name}.key`,
      "-h",
      "sha256",
      "-in",
      `${name}.exe`,
      "-out",
      `${name}-signed.exe`,
    ],
    dir,
  );
  const fp = sh(["openssl", "x509", "-in", `${name}.pem`, "-noout", "-fingerprint", "-sha256"], dir);
  return {
    signed: new Uint8Array(readFileSync(join(dir, `${name}-signed.exe`))),
    thumbprint: fp.split("=")[1]!.trim().replaceAll(":", "").toLowerCase(),
  };
}
