import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  canonicalBucketBits,
  falsePositiveBound,
  layoutFor,
  normalizeThumbprint,
  thumbprintFingerprint,
} from "./format.ts";

describe("normalizeThumbprint", () => {
  test("trims surrounding whitespace, CR included", () => {
    expect(normalizeThumbprint("  StackPivot:abc\r")).toBe("StackPivot:abc");
  });

  test("lower-cases a hex tail, with or without a mitigation prefix", () => {
    expect(normalizeThumbprint("StackPivot:ABCDEF09")).toBe("StackPivot:abcdef09");
    expect(normalizeThumbprint("ABCDEF09")).toBe("abcdef09");
    expect(normalizeThumbprint("HeapSpray:iexplore.exe:DEADBEEF")).toBe("HeapSpray:iexplore.exe:deadbeef");
  });

  test("keeps mitigation names and non-hex tails case-sensitive", () => {
    expect(normalizeThumbprint("StackPivot:Chrome.EXE")).toBe("StackPivot:Chrome.EXE");
    expect(normalizeThumbprint("CallerCheck:ABCDEFG")).toBe("CallerCheck:ABCDEFG");
    expect(normalizeThumbprint("STACKPIVOT:ab")).not.toBe(normalizeThumbprint("StackPivot:ab"));
  });

  test("NFC-normalises non-ASCII text", () => {
    const decomposed = "LoadLib:C:\\Users\\Jose\u0301\\app.exe";
    const composed = "LoadLib:C:\\Users\\Jos\u00e9\\app.exe";
    expect(normalizeThumbprint(decomposed)).toBe(composed);
  });

  test("whitespace-only normalises to empty", () => {
    expect(normalizeThumbprint(" \t ")).toBe("");
  });
});

describe("fingerprint", () => {
  test("is the first 8 bytes of SHA-256 over the UTF-8 of the normalised thumbprint, big-endian", () => {
    // FIPS 180-2 test vector: SHA-256("abc") = ba7816bf 8f01cfea ...
    expect(thumbprintFingerprint("abc")).toBe(0xba7816bf8f01cfean);
    for (const t of ["StackPivot:00ff", "LoadLib:Jos\u00e9", "HeapSpray:漢字"]) {
      const expected = createHash("sha256").update(Buffer.from(t, "utf8")).digest().readBigUInt64BE(0);
      expect(thumbprintFingerprint(t)).toBe(expected);
    }
  });

  test("spellings that normalise alike share a fingerprint", () => {
    expect(thumbprintFingerprint(" StackPivot:ABCD ")).toBe(thumbprintFingerprint("StackPivot:abcd"));
  });
});

describe("bucket bits and bounds", () => {
  test("keep the average bucket load in (8, 16] from 17 entries up to 2^28", () => {
    expect(canonicalBucketBits(0)).toBe(0);
    expect(canonicalBucketBits(16)).toBe(0);
    for (const n of [17, 100, 1000, 65_536, 65_537, 1_000_000, 10_000_000, 2 ** 28]) {
      const load = n / 2 ** canonicalBucketBits(n);
      expect(load).toBeGreaterThan(8);
      expect(load).toBeLessThanOrEqual(16);
    }
  });

  test("cap bucket bits at 24, where the FP bound is still ≤ 2^-32 for every uint32 count", () => {
    expect(canonicalBucketBits(2 ** 32 - 1)).toBe(24);
    expect(falsePositiveBound(2 ** 32 - 1, 24)).toBeLessThanOrEqual(2 ** -32);
    for (const n of [17, 1_000_000, 10_000_000, 2 ** 28]) {
      expect(falsePositiveBound(n, canonicalBucketBits(n))).toBeLessThanOrEqual(2 ** -36);
    }
  });

  test("stay under 5.5 bytes per entry plus the 68-byte fixed part", () => {
    for (const n of [1_000, 1_000_000, 10_000_000, 2 ** 28]) {
      const bytes = layoutFor(n, canonicalBucketBits(n)).fileBytes;
      expect(bytes).toBeLessThanOrEqual(5.5 * n + 68);
    }
  });
});
