/**
 * IPv4/IPv6 + TCP/UDP/ICMP header decoding of a queued packet (what NFQUEUE
 * hands over starts at the IP header). Runs in the unprivileged ips host:
 * these bytes come off the wire and may be anything. Every length is
 * checked against the bytes actually present; anything inconsistent is
 * reported as malformed (null) and the caller passes the packet uninspected
 * and counts it — a malformed packet never throws and never hangs.
 */

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export interface Decoded {
  v6: boolean;
  /** 16-byte addresses (IPv4 mapped as ::ffff:a.b.c.d), views into one scratch buffer per packet. */
  src: Uint8Array;
  dst: Uint8Array;
  proto: number;
  sport: number;
  dport: number;
  tcpFlags: number;
  /** Payload (after the L4 header), a view into the packet. */
  payload: Uint8Array;
}

/** IPv6 extension headers we walk past; at most this many (a chain is not a loop budget). */
const V6_EXT = new Set([0, 43, 60, 51]);
const MAX_V6_EXT = 8;

function l4(d: Decoded, p: Uint8Array, off: number, fragment: boolean): Decoded | null {
  if (fragment) {
    // A non-first fragment has no L4 header: inspected as bytes with ports 0.
    d.payload = p.subarray(off);
    return d;
  }
  if (d.proto === PROTO_TCP) {
    if (p.length < off + 20) return null;
    const doff = (p[off + 12]! >> 4) * 4;
    if (doff < 20 || p.length < off + doff) return null;
    d.sport = (p[off]! << 8) | p[off + 1]!;
    d.dport = (p[off + 2]! << 8) | p[off + 3]!;
    d.tcpFlags = p[off + 13]!;
    d.payload = p.subarray(off + doff);
    return d;
  }
  if (d.proto === PROTO_UDP) {
    if (p.length < off + 8) return null;
    d.sport = (p[off]! << 8) | p[off + 1]!;
    d.dport = (p[off + 2]! << 8) | p[off + 3]!;
    const ulen = (p[off + 4]! << 8) | p[off + 5]!;
    if (ulen < 8) return null;
    // A truncated copy (copyBytes) keeps what we have; a UDP length past the IP packet is malformed.
    d.payload = p.subarray(off + 8, Math.min(p.length, off + ulen));
    return d;
  }
  if (d.proto === PROTO_ICMP || d.proto === PROTO_ICMPV6) {
    if (p.length < off + 4) return null;
    d.payload = p.subarray(off + 4);
    return d;
  }
  d.payload = p.subarray(off);
  return d;
}

export function decode(p: Uint8Array): Decoded | null {
  if (p.length < 1) return null;
  const version = p[0]! >> 4;
  const d: Decoded = {
    v6: version === 6,
    src: new Uint8Array(16),
    dst: new Uint8Array(16),
    proto: 0,
    sport: 0,
    dport: 0,
    tcpFlags: 0,
    payload: p.subarray(0, 0),
  };
  if (version === 4) {
    if (p.length < 20) return null;
    const ihl = (p[0]! & 0x0f) * 4;
    const total = (p[2]! << 8) | p[3]!;
    if (ihl < 20 || total < ihl || p.length < ihl) return null;
    const end = Math.min(p.length, total);
    d.proto = p[9]!;
    d.src[10] = d.src[11] = d.dst[10] = d.dst[11] = 0xff;
    d.src.set(p.subarray(12, 16), 12);
    d.dst.set(p.subarray(16, 20), 12);
    const fragOffset = ((p[6]! & 0x1f) << 8) | p[7]!;
    return l4(d, p.subarray(0, end), ihl, fragOffset !== 0);
  }
  if (version === 6) {
    if (p.length < 40) return null;
    const plen = (p[4]! << 8) | p[5]!;
    const end = Math.min(p.length, 40 + plen);
    const q = p.subarray(0, end);
    d.src.set(p.subarray(8, 24));
    d.dst.set(p.subarray(24, 40));
    let next = p[6]!;
    let off = 40;
    let fragment = false;
    for (let i = 0; ; i++) {
      if (next === 44) {
        if (q.length < off + 8) return null;
        fragment = (((q[off + 2]! << 8) | q[off + 3]!) & 0xfff8) !== 0;
        next = q[off]!;
        off += 8;
      } else if (V6_EXT.has(next)) {
        if (q.length < off + 2) return null;
        const len = next === 51 ? (q[off + 1]! + 2) * 4 : (q[off + 1]! + 1) * 8;
        next = q[off]!;
        off += len;
        if (off > q.length) return null;
      } else break;
      if (i >= MAX_V6_EXT) return null;
    }
    d.proto = next;
    return l4(d, q, off, fragment);
  }
  return null;
}

/** Printable address for events: dotted quad for mapped IPv4, compressed-ish hex for IPv6. */
export function formatAddr(a: Uint8Array): string {
  let mapped = a[10] === 0xff && a[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (a[i] !== 0) mapped = false;
  if (mapped) return `${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((a[i]! << 8) | a[i + 1]!).toString(16));
  return words.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}
