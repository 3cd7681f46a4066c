/** Builds IPv4/IPv6 TCP/UDP packets for tests and benchmarks (checksums are not computed: nothing here checks them). */

import { PROTO_TCP, PROTO_UDP, TCP_ACK } from "./packet.ts";
import { ipBytes } from "./rules/net.ts";

export interface PacketSpec {
  src?: string;
  dst?: string;
  proto?: "tcp" | "udp";
  sport?: number;
  dport?: number;
  flags?: number;
  payload?: string | Uint8Array;
}

export function packet(s: PacketSpec = {}): Uint8Array {
  const payload =
    typeof s.payload === "string" ? new TextEncoder().encode(s.payload) : (s.payload ?? new Uint8Array());
  const tcp = (s.proto ?? "tcp") === "tcp";
  const src = s.src ?? "10.0.0.1";
  const dst = s.dst ?? "10.0.0.2";
  const v6 = src.includes(":");
  const l4len = (tcp ? 20 : 8) + payload.length;
  const ipLen = v6 ? 40 : 20;
  const p = new Uint8Array(ipLen + l4len);
  if (v6) {
    p[0] = 0x60;
    p[4] = l4len >> 8;
    p[5] = l4len & 0xff;
    p[6] = tcp ? PROTO_TCP : PROTO_UDP;
    p[7] = 64;
    p.set(ipBytes(src)!, 8);
    p.set(ipBytes(dst)!, 24);
  } else {
    p[0] = 0x45;
    p[2] = p.length >> 8;
    p[3] = p.length & 0xff;
    p[8] = 64;
    p[9] = tcp ? PROTO_TCP : PROTO_UDP;
    p.set(ipBytes(src)!.subarray(12), 12);
    p.set(ipBytes(dst)!.subarray(12), 16);
  }
  const o = ipLen;
  const sport = s.sport ?? 40000;
  const dport = s.dport ?? 80;
  p[o] = sport >> 8;
  p[o + 1] = sport & 0xff;
  p[o + 2] = dport >> 8;
  p[o + 3] = dport & 0xff;
  if (tcp) {
    p[o + 12] = 5 << 4;
    p[o + 13] = s.flags ?? TCP_ACK;
  } else {
    p[o + 4] = (8 + payload.length) >> 8;
    p[o + 5] = (8 + payload.length) & 0xff;
  }
  p.set(payload, o + (tcp ? 20 : 8));
  return p;
}

/** Concatenates packets into the inspect call's { data, lens }. */
export function batch(packets: Uint8Array[]): { data: Uint8Array; lens: number[] } {
  const lens = packets.map((p) => p.length);
  const data = new Uint8Array(lens.reduce((a, b) => a + b, 0));
  let off = 0;
  for (const p of packets) {
    data.set(p, off);
    off += p.length;
  }
  return { data, lens };
}
