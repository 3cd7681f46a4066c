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

/** Deterministic pseudo-random words, so every run generates the same rules and corpus. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

export function generateRules(n: number, seed = 7): string {
  const r = rng(seed);
  const word = (len: number) =>
    Array.from({ length: len }, () => String.fromCharCode(97 + Math.floor(r() * 26))).join("");
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) {
    const k = i % 10;
    if (k < 6)
      lines.push(
        `alert tcp any any -> any any (msg:"gen ${i}"; content:"${word(6)}${i.toString(36)}"; sid:${i};)`,
      );
    else if (k < 8)
      lines.push(
        `alert tcp any any -> any [80,8080] (msg:"gen ${i}"; flow:to_server; content:"GET "; depth:4; content:"/${word(5)}${i.toString(36)}"; distance:0; within:64; sid:${i};)`,
      );
    else if (k < 9)
      lines.push(
        `drop tcp any any -> any any (msg:"gen ${i}"; content:"${word(7)}${i.toString(36)}"; nocase; sid:${i};)`,
      );
    else
      lines.push(
        `alert udp any any -> any 53 (msg:"gen ${i}"; content:"|0${1 + (i % 8)}|${word(5)}${i.toString(36)}"; sid:${i};)`,
      );
  }
  return lines.join("\n");
}

export function corpus(): { data: Uint8Array; lens: number[]; bytes: number } {
  const r = rng(99);
  const pkts: Uint8Array[] = [];
  const text =
    "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n";
  for (let i = 0; i < 2000; i++) {
    const len = 64 + Math.floor(r() * 1300);
    const body = new Uint8Array(len);
    if (i % 2 === 0)
      body.set(new TextEncoder().encode(text.repeat(Math.ceil(len / text.length)).slice(0, len)));
    else for (let j = 0; j < len; j++) body[j] = Math.floor(r() * 256);
    pkts.push(packet({ sport: 40000 + (i % 50), dport: 80, payload: body }));
  }
  const b = batch(pkts);
  return { ...b, bytes: b.data.length };
}
