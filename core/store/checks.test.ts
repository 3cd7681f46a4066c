import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha384Hex } from "../crypto/digest.ts";
import { fileProblem, streamedFileProblem } from "./checks.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-checks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 2.5 chunks of the streamed reader, so the head, a middle and a partial last read all occur.
const DATA = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => (i * 7 + (i >> 12)) & 0xff);
const ENTRY = { size: DATA.byteLength, sha384: sha384Hex(DATA) };

function file(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

describe("streamedFileProblem: the whole-file check, in bounded memory", () => {
  test("an intact file passes and gives exactly its first bytes", () => {
    const r = streamedFileProblem(file("ok", DATA), ENTRY, 4096);
    expect(r.problem).toBeUndefined();
    expect(r.head).toEqual(DATA.subarray(0, 4096));
  });

  test("a head longer than the file is the whole file", () => {
    const small = DATA.subarray(0, 100);
    const r = streamedFileProblem(file("small", small), { size: 100, sha384: sha384Hex(small) }, 4096);
    expect(r).toEqual({ head: small });
  });

  test.each([
    ["a byte changed in the last chunk", (b: Uint8Array) => b.with(b.length - 1, b[b.length - 1]! ^ 1)],
    ["a byte changed in the middle", (b: Uint8Array) => b.with(1536 * 1024, b[1536 * 1024]! ^ 0x80)],
    ["one byte appended", (b: Uint8Array) => Buffer.concat([b, new Uint8Array(1)])],
    ["one byte cut", (b: Uint8Array) => b.subarray(0, b.length - 1)],
  ])("%s: refused, as fileProblem refuses it", (_name, damage) => {
    const bad = damage(DATA);
    const r = streamedFileProblem(file("bad", bad), ENTRY, 16);
    expect(r.problem).toBeDefined();
    expect(fileProblem(bad, ENTRY)).toBeDefined();
  });

  test("a file grown far past its size is refused without reading all of it", () => {
    const grown = new Uint8Array(DATA.byteLength * 3);
    grown.set(DATA);
    const r = streamedFileProblem(file("grown", grown), ENTRY, 16);
    expect(r.problem).toBe(`larger than the manifest's ${ENTRY.size} bytes`);
  });

  test("a missing file throws (the caller names it)", () => {
    expect(() => streamedFileProblem(join(dir, "absent"), ENTRY, 16)).toThrow(/ENOENT/);
  });
});
