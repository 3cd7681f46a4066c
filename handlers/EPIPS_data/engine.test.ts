/** The matcher end to end on crafted packets: content windows, flow, malformed input, scale. */
import { describe, expect, test } from "bun:test";
import { IpsEngine } from "./engine.ts";
import { TCP_ACK, TCP_SYN } from "./packet.ts";
import { RuleSet } from "./rules/compile.ts";
import { parseRuleFiles } from "./rules/parse.ts";
import { batch, type PacketSpec, packet } from "./testutil.ts";

const engine = (text: string) =>
  new IpsEngine(1, new RuleSet(parseRuleFiles([{ name: "t.rules", text }]).rules));
const sids = (e: IpsEngine, ...specs: PacketSpec[]) => {
  const r = e.inspect(...(Object.values(batch(specs.map(packet))) as [Uint8Array, number[]]));
  return r.detections.map((d) => d.sid);
};

describe("content windows", () => {
  const e = engine(
    [
      'alert tcp any any -> any any (content:"GET "; depth:4; content:"/admin"; distance:0; within:10; sid:1;)',
      'alert tcp any any -> any any (content:"secret"; nocase; offset:2; sid:2;)',
      'alert tcp any any -> any any (content:"ab"; content:!"xyz"; sid:3;)',
      'drop udp any any -> any 53 (content:"|03|bad|03|com"; sid:4;)',
      'alert tcp any any -> any any (content:"x"; pcre:"/id=[0-9]{3,}/"; sid:5;)',
    ].join("\n"),
  );
  test("depth, distance and within bound where a content may be", () => {
    expect(sids(e, { payload: "GET /admin HTTP/1.0" })).toEqual([1]);
    expect(sids(e, { payload: " GET /admin" })).toEqual([]);
    expect(sids(e, { payload: "GET /aaaaaaaaaaaaa/admin" })).toEqual([]);
  });
  test("nocase and offset", () => {
    expect(sids(e, { payload: "..SeCrEt" })).toEqual([2]);
    expect(sids(e, { payload: "SECRET...." })).toEqual([]);
  });
  test("negated content, short anchors, hex content on UDP, pcre", () => {
    expect(sids(e, { payload: "ab" })).toEqual([3]);
    expect(sids(e, { payload: "ab xyz" })).toEqual([]);
    expect(sids(e, { proto: "udp", dport: 53, payload: "\u0003bad\u0003com" })).toEqual([4]);
    expect(sids(e, { proto: "udp", dport: 54, payload: "\u0003bad\u0003com" })).toEqual([]);
    expect(sids(e, { payload: "x id=1234" })).toEqual([5]);
    expect(sids(e, { payload: "x id=12" })).toEqual([]);
  });
  test("a drop rule marks the packet; per-signature hits are counted", () => {
    const r = e.inspect(
      ...(Object.values(batch([packet({ proto: "udp", dport: 53, payload: "\u0003bad\u0003com" })])) as [
        Uint8Array,
        number[],
      ]),
    );
    expect(r.drop).toEqual([0]);
    expect(e.stats().signatures.find((s) => s.sid === 4)?.hits).toBe(2);
  });
});

test("flow: to_server and established follow the TCP handshake", () => {
  const e = engine('alert tcp any any -> any any (flow:to_server,established; content:"HELLO"; sid:9;)');
  const c = { src: "10.0.0.1", sport: 40000, dst: "10.0.0.2", dport: 80 };
  const s = { src: "10.0.0.2", sport: 80, dst: "10.0.0.1", dport: 40000 };
  expect(sids(e, { ...c, flags: TCP_SYN, payload: "HELLO" })).toEqual([]);
  expect(sids(e, { ...s, flags: TCP_SYN | TCP_ACK })).toEqual([]);
  expect(sids(e, { ...s, payload: "HELLO" })).toEqual([]); // to_client, not yet established either
  expect(sids(e, { ...c, flags: TCP_ACK, payload: "HELLO" })).toEqual([9]);
  expect(sids(e, { ...s, payload: "HELLO" })).toEqual([]);
});

test("malformed packets are counted and passed, never thrown", () => {
  const e = engine('drop ip any any -> any any (content:"AAAA"; sid:1;)');
  const good = packet({ payload: "AAAA" });
  const bad = [
    new Uint8Array([0x45]),
    new Uint8Array(20).fill(0x4f),
    good.slice(0, 30),
    Uint8Array.from([0x60, ...new Uint8Array(39)]),
    new Uint8Array([0x00, 1, 2, 3]),
  ];
  const shortTcp = good.slice();
  shortTcp[32] = 0xf0; // data offset 60 > packet
  const r = e.inspect(...(Object.values(batch([...bad, shortTcp, good])) as [Uint8Array, number[]]));
  expect(r.drop).toEqual([6]);
  expect(r.malformed).toBeGreaterThanOrEqual(5);
  // A batch whose lengths overrun its data stops there instead of reading past it.
  expect(e.inspect(new Uint8Array(10), [5, 50]).malformed).toBe(2);
});

test("IPv6 packets are matched", () => {
  const e = engine('alert tcp 2001:db8::/32 any -> any 443 (content:"v6!"; sid:6;)');
  expect(sids(e, { src: "2001:db8::1", dst: "2001:db8::2", dport: 443, payload: "..v6!" })).toEqual([6]);
});

test("100k rules: the per-packet cost does not grow with the rule count", () => {
  const lines: string[] = [];
  for (let i = 1; i <= 100_000; i++)
    lines.push(`alert tcp any any -> any any (content:"sig-${i.toString(36)}-x"; sid:${i};)`);
  const big = engine(lines.join("\n"));
  const p = packet({ payload: `${"lorem ipsum dolor ".repeat(60)} sig-${(77777).toString(36)}-x` });
  const { data, lens } = batch(new Array(200).fill(p));
  const t = performance.now();
  const r = big.inspect(data, lens);
  const ms = performance.now() - t;
  expect(r.detections.length).toBe(200);
  expect(r.detections[0]!.sid).toBe(77777);
  expect(ms).toBeLessThan(2000);
}, 60_000);
