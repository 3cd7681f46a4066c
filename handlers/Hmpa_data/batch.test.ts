/**
 * hasManyParts answers exactly what hasParts answers — members, non-members
 * and near misses that share a member's bucket and tag — in any chunking,
 * for bucketed and single-bucket files.
 */
import { describe, expect, test } from "bun:test";
import { Allowlist } from "./reader.ts";
import { buildAllowlistFromFingerprints } from "./writer.ts";

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function allowlistOf(n: number, seed: number) {
  const r = prng(seed);
  const fps = new BigUint64Array(n);
  for (let i = 0; i < n; i++) fps[i] = (BigInt(r()) << 32n) | BigInt(r());
  const members = fps.slice();
  return { allowlist: Allowlist.from(buildAllowlistFromFingerprints(fps)), members, r };
}

function queriesFor(
  members: BigUint64Array,
  r: () => number,
  count: number,
  bucketBits: number,
): Uint32Array {
  const q = new Uint32Array(2 * count);
  for (let i = 0; i < count; i++) {
    const m = members[r() % members.length]!;
    let hi = Number(m >> 32n);
    let lo = Number(m & 0xffff_ffffn);
    if (i % 3 === 1) {
      hi = r();
      lo = r();
    } else if (i % 3 === 2) {
      // Same bucket and tag, another ext byte (lo's bits 24−b … 31−b): a near miss.
      lo = (lo ^ (1 << (24 - bucketBits))) >>> 0;
    }
    q[2 * i] = hi;
    q[2 * i + 1] = lo;
  }
  return q;
}

describe("hasManyParts", () => {
  test("agrees with hasParts on every query, in any chunk size (bucketed file)", () => {
    const { allowlist, members, r } = allowlistOf(50_000, 7);
    expect(allowlist.bucketBits).toBeGreaterThan(0);
    const q = queriesFor(members, r, 9000, allowlist.bucketBits);
    const expected = Array.from({ length: 9000 }, (_, i) =>
      allowlist.hasParts(q[2 * i]!, q[2 * i + 1]!) ? 1 : 0,
    );
    expect(expected.filter((x) => x).length).toBeGreaterThanOrEqual(3000);
    expect(expected.filter((x) => !x).length).toBeGreaterThanOrEqual(3000);
    for (const chunk of [1, 31, 32, 33, 1000, 9000]) {
      const out = new Uint8Array(chunk).fill(9);
      const got: number[] = [];
      let hits = 0;
      for (let o = 0; o < 9000; o += chunk) {
        const n = Math.min(chunk, 9000 - o);
        hits += allowlist.hasManyParts(q.subarray(2 * o, 2 * (o + n)), out);
        got.push(...out.subarray(0, n));
      }
      expect(got).toEqual(expected);
      expect(hits).toBe(expected.filter((x) => x).length);
    }
  });

  test("a single-bucket file, and an answer array that is too short", () => {
    const { allowlist, members, r } = allowlistOf(10, 3);
    expect(allowlist.bucketBits).toBe(0);
    const q = queriesFor(members, r, 30, allowlist.bucketBits);
    const out = new Uint8Array(30);
    const hits = allowlist.hasManyParts(q, out);
    expect([...out]).toEqual(
      Array.from({ length: 30 }, (_, i) => (allowlist.hasParts(q[2 * i]!, q[2 * i + 1]!) ? 1 : 0)),
    );
    expect(hits).toBeGreaterThanOrEqual(10);
    expect(() => allowlist.hasManyParts(q, new Uint8Array(29))).toThrow(RangeError);
  });
});
