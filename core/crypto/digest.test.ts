import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bytesEqual,
  digestFileHex,
  IncrementalDigest,
  sha256,
  sha256Hex,
  sha384,
  sha384Hex,
} from "./digest.ts";

const abc = new TextEncoder().encode("abc");
// FIPS 180-2 appendix test vectors for "abc".
const SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA384_ABC =
  "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7";

describe("digest", () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-digest-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("one-shot digests match the FIPS vectors", () => {
    expect(sha256Hex(abc)).toBe(SHA256_ABC);
    expect(sha384Hex(abc)).toBe(SHA384_ABC);
    expect(Buffer.from(sha256(abc)).toString("hex")).toBe(SHA256_ABC);
    expect(Buffer.from(sha384(abc)).toString("hex")).toBe(SHA384_ABC);
    expect(sha384(abc)).toBeInstanceOf(Uint8Array);
  });

  test("incremental hashing equals one-shot and counts bytes", () => {
    const data = crypto.getRandomValues(new Uint8Array(100_000));
    const inc = new IncrementalDigest("sha384");
    for (let off = 0; off < data.length; off += 7_777) inc.update(data.subarray(off, off + 7_777));
    expect(inc.length).toBe(data.length);
    expect(inc.digestHex()).toBe(sha384Hex(data));
    const inc256 = new IncrementalDigest("sha256").update(data);
    expect(Buffer.from(inc256.digest()).toString("hex")).toBe(sha256Hex(data));
  });

  test("digestFileHex streams a file", async () => {
    const data = crypto.getRandomValues(new Uint8Array(300_000));
    const path = join(dir, "blob");
    writeFileSync(path, data);
    expect(await digestFileHex(path)).toBe(sha384Hex(data));
    expect(await digestFileHex(path, "sha256")).toBe(sha256Hex(data));
  });

  test("bytesEqual compares length and content", () => {
    expect(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
    expect(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
    expect(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
  });
});
