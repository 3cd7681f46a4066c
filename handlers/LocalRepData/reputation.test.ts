import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { HEADER_BYTES, layoutFor, OFFSET } from "./format.ts";
import { answer } from "./index.ts";
import { ReputationDb, validateReputation } from "./reader.ts";
import { buildReputation, type RepEntryInput, tableFromEntries } from "./writer.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

function build(hashes: RepEntryInput[], signers: RepEntryInput[] = []) {
  return buildReputation(tableFromEntries(hashes, false), tableFromEntries(signers, true));
}

describe("reputation.bin", () => {
  const hashes = Array.from({ length: 5000 }, (_, i) => ({
    sha256: sha(`file-${i}`),
    score: i % 101,
    class: (i % 2 ? "system" : "application") as "system" | "application",
  }));
  const signers = [
    { sha256: sha("cert-a"), score: 95, class: "application" as const, name: "Contoso Ltd" },
    { sha256: sha("cert-b"), score: 10, class: "pua" as const, name: "Adware Inc — ünïcode" },
  ];
  const built = build(hashes, signers);
  const db = ReputationDb.from(built.bytes, { file: "reputation.bin" });

  test("every listed hash and signer is found with its score, class and band; others are not", () => {
    validateReputation(built.bytes, { file: "reputation.bin" });
    for (const [i, h] of hashes.entries()) {
      const r = db.byHash(h.sha256)!;
      expect(r.score).toBe(i % 101);
      expect(r.class).toBe(i % 2 ? "system" : "application");
    }
    expect(db.byHash(hashes[95]!.sha256)!.band).toBe("high");
    expect(db.byHash(hashes[50]!.sha256)!.band).toBe("medium");
    expect(db.byHash(hashes[3]!.sha256)!.band).toBe("low");
    expect(db.byHash(sha("not-listed"))).toBeNull();
    expect(db.byHash(hashes[7]!.sha256.toUpperCase())!.score).toBe(7);
    expect(db.bySigner(signers[1]!.sha256)).toEqual({
      score: 10,
      band: "low",
      class: "pua",
      name: "Adware Inc — ünïcode",
    });
    expect(db.bySigner(sha("cert-c"))).toBeNull();
  });

  test("the answer prefers the file hash, then the signer", () => {
    const listed = hashes[10]!.sha256;
    expect(answer(db, { sha256: listed, signer: signers[0]!.sha256 }).source).toBe("hash");
    const bySigner = answer(db, { sha256: sha("unlisted"), signer: signers[0]!.sha256 });
    expect(bySigner).toMatchObject({ source: "signer", band: "high", signerName: "Contoso Ltd" });
    expect(answer(db, { sha256: sha("unlisted") })).toMatchObject({
      source: null,
      band: "unknown",
      score: null,
    });
  });

  test("18 bytes per entry plus a small directory, read in place", () => {
    const n = hashes.length + signers.length;
    expect(built.bytes.length / n).toBeLessThan(19.5);
    expect(db.copied).toBe(false);
    // Lookups read the very bytes handed in: flip a score in the buffer and the answer changes.
    const L = layoutFor(built.hashEntries, built.signerEntries, 0);
    const copy = built.bytes.slice();
    for (let k = 0; k < built.hashEntries; k++)
      if (copy[L.hash.scoresOffset + k] === 42) copy[L.hash.scoresOffset + k] = 43;
    const db2 = ReputationDb.from(copy, { file: "r" });
    expect(db2.byHash(hashes[42]!.sha256)!.score).toBe(43);
  });

  test("a later entry for the same key overrides an earlier one", () => {
    const b = build([
      { sha256: sha("x"), score: 10 },
      { sha256: sha("y"), score: 20 },
      { sha256: sha("x"), score: 90 },
    ]);
    expect(b.overridden).toBe(1);
    expect(b.hashEntries).toBe(2);
    validateReputation(b.bytes, { file: "r" });
    expect(ReputationDb.from(b.bytes, { file: "r" }).byHash(sha("x"))!.score).toBe(90);
  });

  test("an empty database is valid and answers unknown", () => {
    const b = build([]);
    validateReputation(b.bytes, { file: "r" });
    expect(ReputationDb.from(b.bytes, { file: "r" }).byHash(sha("a"))).toBeNull();
  });

  test("an unaligned buffer is copied once rather than misread", () => {
    const shifted = new Uint8Array(built.bytes.length + 1);
    shifted.set(built.bytes, 1);
    const db3 = ReputationDb.from(shifted.subarray(1), { file: "r" });
    expect(db3.copied).toBe(true);
    expect(db3.byHash(hashes[5]!.sha256)!.score).toBe(5);
  });
});

describe("validation rejects damaged files with a reason", () => {
  const b = build(
    Array.from({ length: 100 }, (_, i) => ({ sha256: sha(`f${i}`), score: 50 })),
    [{ sha256: sha("c"), score: 50, name: "n" }],
  ).bytes;
  const L = layoutFor(100, 1, 1);
  const cases: [string, (x: Uint8Array) => void, string][] = [
    ["magic", (x) => (x[0] = 0), "bad-magic"],
    ["version", (x) => (x[OFFSET.version] = 9), "unsupported-version"],
    ["truncated", () => {}, "truncated"],
    [
      "swapped keys",
      (x) => {
        const a = x.slice(L.hash.keysOffset, L.hash.keysOffset + 16);
        x.copyWithin(L.hash.keysOffset, L.hash.keysOffset + 16, L.hash.keysOffset + 32);
        x.set(a, L.hash.keysOffset + 16);
      },
      "unsorted-entries",
    ],
    [
      "duplicate key",
      (x) => x.copyWithin(L.hash.keysOffset + 16, L.hash.keysOffset, L.hash.keysOffset + 16),
      "duplicate-entry",
    ],
    ["score > 100", (x) => (x[L.hash.scoresOffset + 3] = 101), "bad-score"],
    ["reserved", (x) => (x[HEADER_BYTES - 1] = 1), "bad-header"],
  ];
  for (const [label, damage, reason] of cases) {
    test(label, () => {
      let x = b.slice();
      damage(x);
      if (label === "truncated") x = x.subarray(0, x.length - 1);
      let err: unknown;
      try {
        validateReputation(x, { file: "reputation.bin" });
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).toBe("HND_REP_INVALID");
      expect((err as { details?: { reason?: string } }).details?.reason).toBe(reason);
    });
  }
});

test("a million entries build, validate and load quickly", () => {
  const n = 1_000_000;
  const keys = new Uint32Array(4 * n);
  crypto.getRandomValues(keys);
  const t0 = performance.now();
  const b = buildReputation(
    { keys, scores: new Uint8Array(n).fill(90), classes: new Uint8Array(n) },
    { keys: new Uint32Array(0), scores: new Uint8Array(0), classes: new Uint8Array(0), names: [] },
  );
  const t1 = performance.now();
  validateReputation(b.bytes, { file: "r" });
  const t2 = performance.now();
  const db = ReputationDb.from(b.bytes, { file: "r" });
  const t3 = performance.now();
  const hex = Buffer.from(new Uint8Array(keys.buffer, 16 * 12345, 16))
    .toString("hex")
    .padEnd(64, "0");
  expect(db.byHash(hex)?.score).toBe(90);
  expect(t3 - t2).toBeLessThan(5);
  expect(t1 - t0).toBeLessThan(5000);
  expect(t2 - t1).toBeLessThan(2000);
});
