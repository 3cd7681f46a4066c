import { expect, test } from "bun:test";
import * as net from "node:net";
import { isIPv4, isIPv6 } from "./ip-address.ts";

const CORPUS = [
  "",
  "0.0.0.0",
  "127.0.0.1",
  "255.255.255.255",
  "256.1.1.1",
  "01.2.3.4",
  "1.2.3",
  "1.2.3.4.5",
  "1.2.3.4 ",
  " 1.2.3.4",
  "1..2.3",
  "::",
  "::1",
  "1::",
  "fe80::1%eth0",
  "fe80::1%",
  "2001:db8::8a2e:370:7334",
  "2001:0db8:0000:0000:0000:ff00:0042:8329",
  "2001:db8:0:0:0:0:0:0:1",
  "::ffff:192.0.2.128",
  "::ffff:192.0.2.256",
  "1:2:3:4:5:6:1.2.3.4",
  "1:2:3:4:5:6:7:1.2.3.4",
  ":::",
  "1:::2",
  "12345::",
  "g::1",
  "::1/128",
  "[::1]",
  "1.2.3.4%eth0",
  "FFFF::",
  "1:2:3:4:5:6:7::",
  "::2:3:4:5:6:7:8",
];

test("the same answers as node:net on a corpus of addresses and near-misses", () => {
  for (const s of CORPUS) {
    expect([s, isIPv4(s)]).toEqual([s, net.isIPv4(s)]);
    expect([s, isIPv6(s)]).toEqual([s, net.isIPv6(s)]);
  }
});

test("the same answers as node:net on 20,000 generated address-like strings", () => {
  // A fixed linear congruential sequence: the same strings on every run.
  let seed = 0x2545f491;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const hex = "0123456789abcdefABCDEFg";
  const group = () => Array.from({ length: next(6) }, () => hex[next(hex.length)]).join("");
  const octet = () => String(next(10) < 8 ? next(256) : next(1000)).padStart(next(4) === 0 ? 3 : 0, "0");
  const v4 = () => Array.from({ length: 3 + next(3) }, octet).join(".");
  const candidate = () => {
    if (next(3) === 0) return v4();
    const groups = Array.from({ length: 1 + next(9) }, group);
    let s = groups.join(":");
    if (next(2) === 0) {
      const at = next(s.length + 1);
      s = `${s.slice(0, at)}::${s.slice(at)}`;
    }
    if (next(4) === 0) s += `:${v4()}`;
    if (next(6) === 0) s += `%${group() || "eth0"}`;
    return s;
  };
  const valid = { v4: 0, v6: 0 };
  for (let i = 0; i < 20_000; i++) {
    const s = candidate();
    if (isIPv4(s) !== net.isIPv4(s) || isIPv6(s) !== net.isIPv6(s)) {
      throw new Error(`disagreement on ${JSON.stringify(s)}`);
    }
    if (isIPv4(s)) valid.v4++;
    if (isIPv6(s)) valid.v6++;
  }
  // Agreement must not be only on "no": the generator reaches valid addresses of both kinds.
  expect(valid.v4).toBeGreaterThan(100);
  expect(valid.v6).toBeGreaterThan(100);
});
