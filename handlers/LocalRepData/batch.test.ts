/**
 * The batch lookup API answers exactly what the one-at-a-time API answers,
 * for members, near misses (same bucket, same first word) and random keys,
 * in any chunking, with no answer left over from an earlier batch.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { keyWords } from "./format.ts";
import { keysFromDigests, ReputationDb } from "./reader.ts";
import { buildReputation, type RepEntryInput, tableFromEntries } from "./writer.ts";

const digest = (s: string) => createHash("sha256").update(s).digest();

function build(hashes: RepEntryInput[], signers: RepEntryInput[] = []) {
  const built = buildReputation(tableFromEntries(hashes, false), tableFromEntries(signers, true));
  return ReputationDb.from(built.bytes, { file: "reputation.bin" });
}

describe("batch lookups", () => {
  const members = Array.from({ length: 20_000 }, (_, i) => digest(`file-${i}`));
  const db = build(
    members.map((d, i) => ({ sha256: d.toString("hex"), score: i % 101, class: "application" as const })),
    [{ sha256: digest("cert").toString("hex"), score: 90, class: "application", name: "Contoso" }],
  );
  // Members, random non-members, and near misses that share the first 12 bytes of a member.
  const near = members.slice(0, 500).map((d) => {
    const x = Buffer.from(d);
    x[15] = (x[15]! ^ 0x01) & 0xff;
    return x;
  });
  const randoms = Array.from({ length: 3000 }, (_, i) => digest(`other-${i}`));
  const queries = [...members, ...near, ...randoms];
  const all = Buffer.concat(queries);

  test("hashScores agrees with byHash on every query, in any chunk size", () => {
    const keys = keysFromDigests(all);
    expect(keys.length).toBe(4 * queries.length);
    const expected = queries.map((d) => db.byHash(d.toString("hex"))?.score ?? -1);
    for (const chunk of [1, 7, 32, 33, 4096, queries.length]) {
      const scores = new Int16Array(chunk).fill(123);
      const got: number[] = [];
      let hits = 0;
      for (let o = 0; o < queries.length; o += chunk) {
        const n = Math.min(chunk, queries.length - o);
        hits += db.hashScores(keys.subarray(4 * o, 4 * (o + n)), scores);
        got.push(...scores.subarray(0, n));
      }
      expect(got).toEqual(expected);
      expect(hits).toBe(expected.filter((s) => s >= 0).length);
    }
    expect(expected.filter((s) => s >= 0).length).toBeGreaterThan(10_000);
  });

  test("findHashes gives the entries byHash describes; the key words match keyWords of the hex", () => {
    const sample = [...members.slice(0, 50), ...near.slice(0, 50)];
    const keys = keysFromDigests(Buffer.concat(sample));
    const w = new Uint32Array(4);
    keyWords(sample[3]!.toString("hex"), w);
    expect([...keys.subarray(12, 16)]).toEqual([...w]);
    const idx = new Int32Array(sample.length);
    expect(db.findHashes(keys, idx)).toBe(50);
    sample.forEach((d, i) => {
      const one = db.byHash(d.toString("hex"));
      if (one === null) expect(idx[i]).toBe(-1);
      else expect(db.hashEntry(idx[i]!)).toEqual(one);
    });
  });

  test("signer batches, small tables (one bucket) and an empty database", () => {
    const cert = keysFromDigests(Buffer.concat([digest("cert"), digest("nope")]));
    const out = new Int16Array(2);
    expect(db.signerScores(cert, out)).toBe(1);
    expect([...out]).toEqual([90, -1]);
    const small = build([{ sha256: digest("a").toString("hex"), score: 7, class: "system" }]);
    expect(small.hashScores(keysFromDigests(Buffer.concat([digest("a"), digest("b")])), out)).toBe(1);
    expect([...out]).toEqual([7, -1]);
    const empty = build([]);
    expect(empty.hashScores(keysFromDigests(digest("a")), out)).toBe(0);
    expect(out[0]).toBe(-1);
  });

  test("an answer array shorter than the queries, or digests shorter than a key, are refused", () => {
    expect(() => db.hashScores(new Uint32Array(8), new Int16Array(1))).toThrow(RangeError);
    expect(() => db.findHashes(new Uint32Array(8), new Int32Array(1))).toThrow(RangeError);
    expect(() => keysFromDigests(new Uint8Array(30), 15)).toThrow(RangeError);
    // 16-byte keys laid end to end work as well as whole digests.
    const k16 = keysFromDigests(Buffer.concat(members.slice(0, 2).map((d) => d.subarray(0, 16))), 16);
    const s = new Int16Array(2);
    expect(db.hashScores(k16, s)).toBe(2);
  });
});
