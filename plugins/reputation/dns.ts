/**
 * DNS messages (RFC 1035), encoded and decoded here rather than through the
 * system resolver, because SXL needs what stub resolvers hide: the TC bit,
 * the answer TTL, NXDOMAIN with its SOA (RFC 2308 negative caching), and an
 * exact echo of the question for spoofing checks. Covers the header, names
 * (with compression both ways), A, TXT, SOA and the EDNS OPT pseudo-record
 * (RFC 6891); other record types pass through as raw rdata.
 *
 * Decoding treats every byte as hostile: lengths are bounds-checked,
 * compression pointers may only point backwards and at most 32 times per
 * name, and a name may not exceed 255 octets.
 */
import { OutpostError } from "../../core/errors.ts";

export class DnsError extends OutpostError {}

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, ANY: 255 } as const;
export const CLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const HEADER_BYTES = 12;
export const MAX_NAME_OCTETS = 255;
export const MAX_LABEL = 63;
/** Largest UDP answer without EDNS (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_MAX = 512;

export interface DnsFlags {
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

export type RecordData =
  | { type: "A"; address: string }
  | { type: "TXT"; strings: string[] }
  | { type: "SOA"; soa: SoaData }
  | { type: "OPT"; udpSize: number }
  | { type: "raw"; bytes: Uint8Array };

export interface DnsRecord {
  name: string;
  type: number;
  /** For OPT this is the requester's UDP payload size (RFC 6891). */
  class: number;
  ttl: number;
  data: RecordData;
}

export interface DnsMessage {
  id: number;
  flags: DnsFlags;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

const LATIN1 = new TextDecoder("latin1");
const UTF8 = new TextDecoder();

const fail = (msg: string) => new DnsError("SXL_DNS_MALFORMED", `DNS message: ${msg}`);

// ---------------------------------------------------------------------------
// Encoding

class Writer {
  private buf = new Uint8Array(512);
  length = 0;
  private readonly names = new Map<string, number>();

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.length++] = v & 0xff;
  }
  u16(v: number): void {
    this.u8(v >>> 8);
    this.u8(v);
  }
  u32(v: number): void {
    this.u16(v >>> 16);
    this.u16(v & 0xffff);
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  setU16(at: number, v: number): void {
    this.buf[at] = (v >>> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }
  /** A domain name, compressed against names written before (case-insensitively, RFC 1035 §4.1.4). */
  name(name: string): void {
    const labels = splitName(name);
    const lower = labels.join(".").toLowerCase();
    let offset = 0;
    for (let i = 0; i < labels.length; i++) {
      const suffix = offset === 0 ? lower : lower.slice(offset);
      const at = this.names.get(suffix);
      if (at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.length < 0x3fff) this.names.set(suffix, this.length);
      // splitName admits printable ASCII only: one byte per character.
      const label = labels[i]!;
      this.room(label.length + 1);
      this.buf[this.length++] = label.length;
      for (let c = 0; c < label.length; c++) this.buf[this.length++] = label.charCodeAt(c);
      offset += label.length + 1;
    }
    this.u8(0);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const PRINTABLE = /^[\x21-\x7e]+$/;

/** Labels of a name (no trailing dot); validates label and total length. */
export function splitName(name: string): string[] {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  if (trimmed === "") return [];
  const labels = trimmed.split(".");
  let octets = 1;
  for (const l of labels) {
    if (l.length === 0) throw new DnsError("SXL_DNS_BAD_NAME", `empty label in ${JSON.stringify(name)}`);
    if (l.length > MAX_LABEL)
      throw new DnsError("SXL_DNS_BAD_NAME", `label longer than ${MAX_LABEL} in ${name}`);
    if (!PRINTABLE.test(l))
      throw new DnsError("SXL_DNS_BAD_NAME", `non-printable label in ${JSON.stringify(name)}`);
    octets += l.length + 1;
  }
  if (octets > MAX_NAME_OCTETS)
    throw new DnsError("SXL_DNS_BAD_NAME", `name longer than ${MAX_NAME_OCTETS} octets`);
  return labels;
}

function writeRecord(w: Writer, r: DnsRecord): void {
  w.name(r.name);
  w.u16(r.type);
  w.u16(r.class);
  w.u32(r.ttl >>> 0);
  const lenAt = w.length;
  w.u16(0);
  const start = w.length;
  const d = r.data;
  switch (d.type) {
    case "A": {
      const parts = d.address.split(".").map(Number);
      if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
        throw new DnsError("SXL_DNS_BAD_RECORD", `bad IPv4 address ${d.address}`);
      }
      for (const p of parts) w.u8(p);
      break;
    }
    case "TXT":
      for (const s of d.strings) {
        const b = new TextEncoder().encode(s);
        if (b.length > 255) throw new DnsError("SXL_DNS_BAD_RECORD", "TXT string longer than 255 bytes");
        w.u8(b.length);
        w.bytes(b);
      }
      break;
    case "SOA":
      w.name(d.soa.mname);
      w.name(d.soa.rname);
      w.u32(d.soa.serial);
      w.u32(d.soa.refresh);
      w.u32(d.soa.retry);
      w.u32(d.soa.expire);
      w.u32(d.soa.minimum);
      break;
    case "OPT":
      break;
    case "raw":
      w.bytes(d.bytes);
  }
  w.setU16(lenAt, w.length - start);
}

export function encodeMessage(m: DnsMessage): Uint8Array {
  const w = new Writer();
  const f = m.flags;
  w.u16(m.id);
  w.u16(
    (f.qr ? 0x8000 : 0) |
      ((f.opcode & 0xf) << 11) |
      (f.aa ? 0x0400 : 0) |
      (f.tc ? 0x0200 : 0) |
      (f.rd ? 0x0100 : 0) |
      (f.ra ? 0x0080 : 0) |
      (f.rcode & 0xf),
  );
  w.u16(m.questions.length);
  w.u16(m.answers.length);
  w.u16(m.authorities.length);
  w.u16(m.additionals.length);
  for (const q of m.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.class);
  }
  for (const r of m.answers) writeRecord(w, r);
  for (const r of m.authorities) writeRecord(w, r);
  for (const r of m.additionals) writeRecord(w, r);
  return w.done();
}

// ---------------------------------------------------------------------------
// Decoding

function readName(b: Uint8Array, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let p = start;
  let next = -1;
  let jumps = 0;
  let octets = 1;
  for (;;) {
    if (p >= b.length) throw fail("name runs past the end");
    const len = b[p]!;
    if ((len & 0xc0) === 0xc0) {
      if (p + 1 >= b.length) throw fail("truncated compression pointer");
      const target = ((len & 0x3f) << 8) | b[p + 1]!;
      // Pointers must go backwards, which also rules out loops.
      if (target >= p) throw fail("compression pointer does not point backwards");
      if (++jumps > 32) throw fail("too many compression pointers");
      if (next < 0) next = p + 2;
      p = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw fail("unsupported label type");
    if (len === 0) {
      if (next < 0) next = p + 1;
      break;
    }
    if (p + 1 + len > b.length) throw fail("label runs past the end");
    octets += len + 1;
    if (octets > MAX_NAME_OCTETS) throw fail("name longer than 255 octets");
    labels.push(LATIN1.decode(b.subarray(p + 1, p + 1 + len)));
    p += 1 + len;
  }
  return { name: labels.join("."), next };
}

function u16(b: Uint8Array, p: number): number {
  if (p + 2 > b.length) throw fail("truncated");
  return (b[p]! << 8) | b[p + 1]!;
}
function u32(b: Uint8Array, p: number): number {
  if (p + 4 > b.length) throw fail("truncated");
  return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

function readRecord(b: Uint8Array, p: number): { record: DnsRecord; next: number } {
  const { name, next } = readName(b, p);
  const type = u16(b, next);
  const cls = u16(b, next + 2);
  const ttl = u32(b, next + 4);
  const rdlen = u16(b, next + 8);
  const rd = next + 10;
  if (rd + rdlen > b.length) throw fail("rdata runs past the end");
  let data: RecordData;
  if (type === TYPE.A && cls === CLASS_IN) {
    if (rdlen !== 4) throw fail("A record rdata is not 4 bytes");
    data = { type: "A", address: `${b[rd]}.${b[rd + 1]}.${b[rd + 2]}.${b[rd + 3]}` };
  } else if (type === TYPE.TXT) {
    const strings: string[] = [];
    let q = rd;
    while (q < rd + rdlen) {
      const l = b[q]!;
      if (q + 1 + l > rd + rdlen) throw fail("TXT string runs past its record");
      strings.push(UTF8.decode(b.subarray(q + 1, q + 1 + l)));
      q += 1 + l;
    }
    data = { type: "TXT", strings };
  } else if (type === TYPE.SOA) {
    const m = readName(b, rd);
    const r = readName(b, m.next);
    const q = r.next;
    if (q + 20 > rd + rdlen) throw fail("SOA rdata too short");
    data = {
      type: "SOA",
      soa: {
        mname: m.name,
        rname: r.name,
        serial: u32(b, q),
        refresh: u32(b, q + 4),
        retry: u32(b, q + 8),
        expire: u32(b, q + 12),
        minimum: u32(b, q + 16),
      },
    };
  } else if (type === TYPE.OPT) {
    data = { type: "OPT", udpSize: cls };
  } else {
    data = { type: "raw", bytes: b.slice(rd, rd + rdlen) };
  }
  return { record: { name, type, class: cls, ttl, data }, next: rd + rdlen };
}

export function decodeMessage(b: Uint8Array): DnsMessage {
  if (b.length < HEADER_BYTES) throw fail(`${b.length} bytes, shorter than a header`);
  const id = u16(b, 0);
  const fl = u16(b, 2);
  const counts = [u16(b, 4), u16(b, 6), u16(b, 8), u16(b, 10)] as const;
  // Each entry takes at least 5 (question) or 11 (record) bytes: reject counts the message cannot hold.
  if (counts[0] * 5 + (counts[1] + counts[2] + counts[3]) * 11 > b.length - HEADER_BYTES) {
    throw fail("section counts exceed the message size");
  }
  const flags: DnsFlags = {
    qr: (fl & 0x8000) !== 0,
    opcode: (fl >>> 11) & 0xf,
    aa: (fl & 0x0400) !== 0,
    tc: (fl & 0x0200) !== 0,
    rd: (fl & 0x0100) !== 0,
    ra: (fl & 0x0080) !== 0,
    rcode: fl & 0xf,
  };
  let p = HEADER_BYTES;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const { name, next } = readName(b, p);
    questions.push({ name, type: u16(b, next), class: u16(b, next + 2) });
    p = next + 4;
  }
  const section = (n: number) => {
    const out: DnsRecord[] = [];
    for (let i = 0; i < n; i++) {
      const r = readRecord(b, p);
      out.push(r.record);
      p = r.next;
    }
    return out;
  };
  const answers = section(counts[1]);
  const authorities = section(counts[2]);
  const additionals = section(counts[3]);
  return { id, flags, questions, answers, authorities, additionals };
}

export function queryMessage(
  id: number,
  name: string,
  type: number,
  opts: { udpSize?: number; rd?: boolean } = {},
): DnsMessage {
  return {
    id,
    flags: { qr: false, opcode: 0, aa: false, tc: false, rd: opts.rd ?? true, ra: false, rcode: 0 },
    questions: [{ name, type, class: CLASS_IN }],
    answers: [],
    authorities: [],
    additionals: opts.udpSize
      ? [
          {
            name: "",
            type: TYPE.OPT,
            class: opts.udpSize,
            ttl: 0,
            data: { type: "OPT", udpSize: opts.udpSize },
          },
        ]
      : [],
  };
}
