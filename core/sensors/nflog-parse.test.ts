/**
 * nfnetlink_log layouts, one test per rule, on crafted bytes (no kernel):
 * the config request the kernel must accept, its ACK, and the packet
 * messages whose TCP SYNs become network.connect.
 */
import { describe, expect, test } from "bun:test";
import {
  NFULNL_CFG_CMD,
  netlinkAck,
  nflogCmd,
  nflogConfigMessage,
  nflogCopyMode,
  parseIpTcp,
  parseNflog,
} from "./nflog-parse.ts";

const ipv4Syn = (src: number[], dst: number[], sport: number, dport: number) => {
  const p = new Uint8Array(40);
  p[0] = 0x45; // version 4, IHL 5
  p[9] = 6; // TCP
  p.set(src, 12);
  p.set(dst, 16);
  new DataView(p.buffer).setUint16(20, sport, false);
  new DataView(p.buffer).setUint16(22, dport, false);
  return p;
};

const attr = (type: number, v: Uint8Array) => {
  const out = new Uint8Array((4 + v.length + 3) & ~3);
  new DataView(out.buffer).setUint16(0, 4 + v.length, true);
  new DataView(out.buffer).setUint16(2, type, true);
  out.set(v, 4);
  return out;
};

/** One NFULNL_MSG_PACKET message with a payload and, optionally, a uid attribute. */
function packetMessage(payload: Uint8Array, uid?: number): Uint8Array {
  const attrs = [attr(9, payload)];
  if (uid !== undefined) {
    const u = new Uint8Array(4);
    new DataView(u.buffer).setUint32(0, uid, false);
    attrs.push(attr(11 | 0x4000 /* NLA_F_NET_BYTEORDER is masked off */, u));
  }
  const len = 20 + attrs.reduce((n, a) => n + a.length, 0);
  const m = new Uint8Array(len);
  const dv = new DataView(m.buffer);
  dv.setUint32(0, len, true);
  dv.setUint16(4, 4 << 8, true); // NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET
  m[16] = 2; // AF_INET
  let off = 20;
  for (const a of attrs) {
    m.set(a, off);
    off += a.length;
  }
  return m;
}

describe("config requests", () => {
  test("header: subsystem ULOG, CONFIG, request + ack, group in network byte order", () => {
    const m = nflogConfigMessage(3471, [nflogCmd(NFULNL_CFG_CMD.BIND)], 7);
    const dv = new DataView(m.buffer);
    expect(dv.getUint32(0, true)).toBe(m.length);
    expect(dv.getUint16(4, true)).toBe((4 << 8) | 1);
    expect(dv.getUint16(6, true)).toBe(1 | 4);
    expect(dv.getUint32(8, true)).toBe(7);
    expect(dv.getUint16(18, false)).toBe(3471);
    // NFULA_CFG_CMD with a one-byte command, padded to 4.
    expect([...m.subarray(20)]).toEqual([5, 0, 1, 0, 1, 0, 0, 0]);
  });

  test("copy mode: big-endian range then NFULNL_COPY_PACKET", () => {
    expect([...nflogCopyMode(96)]).toEqual([10, 0, 2, 0, 0, 0, 0, 96, 2, 0, 0, 0]);
  });

  test("the ACK answering our sequence number gives the errno; others are ignored", () => {
    const ack = (seq: number, err: number) => {
      const b = new Uint8Array(36);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, 36, true);
      dv.setUint16(4, 2, true); // NLMSG_ERROR
      dv.setUint32(8, seq, true);
      dv.setInt32(16, -err, true);
      return b;
    };
    const two = new Uint8Array([...ack(3, 0), ...ack(4, 1)]);
    expect(netlinkAck(two, two.length, 3)).toBe(0);
    expect(netlinkAck(two, two.length, 4)).toBe(1);
    expect(netlinkAck(two, two.length, 5)).toBeUndefined();
  });
});

describe("packets", () => {
  test("an IPv4 SYN: addresses and ports from the headers, uid from NFULA_UID", () => {
    const m = packetMessage(ipv4Syn([10, 0, 0, 5], [203, 0, 113, 9], 51700, 4444), 1000);
    expect(parseNflog(m, m.length)).toEqual([
      { proto: "tcp", local: "10.0.0.5", lport: 51700, remote: "203.0.113.9", rport: 4444, uid: 1000, ts: 0 },
    ]);
  });

  test("a kernel batch of several messages gives one record each", () => {
    const a = packetMessage(ipv4Syn([127, 0, 0, 1], [127, 0, 0, 1], 1, 2), 0);
    const b = packetMessage(ipv4Syn([127, 0, 0, 1], [127, 0, 0, 1], 3, 4), 0);
    const both = new Uint8Array([...a, ...b]);
    expect(parseNflog(both, both.length).map((r) => r.rport)).toEqual([2, 4]);
  });

  test("IPv6: addresses compressed, v4-mapped shown as IPv4", () => {
    const p = new Uint8Array(60);
    p[0] = 0x60;
    p[6] = 6;
    p[23] = 1; // src ::1
    p.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7], 24);
    new DataView(p.buffer).setUint16(40, 40000, false);
    new DataView(p.buffer).setUint16(42, 443, false);
    expect(parseIpTcp(p)).toEqual({
      proto: "tcp6",
      local: "::1",
      lport: 40000,
      remote: "192.0.2.7",
      rport: 443,
    });
  });

  test("not TCP, truncated, or a message cut short: skipped, never misread", () => {
    const udp = ipv4Syn([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
    udp[9] = 17;
    expect(parseIpTcp(udp)).toBeUndefined();
    expect(parseIpTcp(ipv4Syn([1, 1, 1, 1], [2, 2, 2, 2], 1, 2).subarray(0, 22))).toBeUndefined();
    const m = packetMessage(ipv4Syn([1, 1, 1, 1], [2, 2, 2, 2], 1, 2));
    expect(parseNflog(m, m.length - 8)).toEqual([]);
    // No NFULA_UID (no local socket): uid -1, not 0 (root).
    expect(parseNflog(m, m.length)[0]?.uid).toBe(-1);
  });
});
