import { describe, expect, test } from "bun:test";
import { PackageError } from "../errors.ts";
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest, serializeManifest } from "./manifest.ts";

const hex = (c: string) => c.repeat(96);
const valid: Manifest = {
  schema: 1,
  type: "Hmpa_data",
  version: 7,
  created: "2025-01-31T12:00:00.000Z",
  files: [
    { path: "a.json", size: 3, sha384: hex("a") },
    { path: "dir/b.bin", size: 0, sha384: hex("b") },
  ],
};
const bytesOf = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function invalid(value: unknown, code = "PKG_MANIFEST_INVALID"): PackageError {
  let caught: unknown;
  try {
    parseManifest(typeof value === "string" ? new TextEncoder().encode(value) : bytesOf(value), "pkg.tar");
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(PackageError);
  expect((caught as PackageError).code).toBe(code);
  expect((caught as PackageError).file).toBe("pkg.tar");
  return caught as PackageError;
}

describe("parseManifest", () => {
  test("accepts a valid manifest and round-trips the canonical serialisation", () => {
    expect(parseManifest(bytesOf(valid), "pkg.tar")).toEqual(valid);
    expect(parseManifest(serializeManifest(valid), "pkg.tar")).toEqual(valid);
    expect(parseManifest(bytesOf({ ...valid, files: [] }), "pkg.tar").files).toEqual([]);
  });

  test("serialisation is byte-stable regardless of key order", () => {
    const shuffled = {
      files: valid.files,
      created: valid.created,
      version: 7,
      type: "Hmpa_data",
      schema: 1,
    } as Manifest;
    expect(Buffer.from(serializeManifest(shuffled)).equals(Buffer.from(serializeManifest(valid)))).toBe(true);
  });

  test("refuses a manifest over 1 MiB before parsing it", () => {
    const big = " ".repeat(MAX_MANIFEST_BYTES + 1);
    expect(invalid(big, "PKG_MANIFEST_TOO_LARGE").message).toContain("limit");
  });

  test("refuses non-JSON and non-UTF-8", () => {
    invalid("{not json");
    let caught: unknown;
    try {
      parseManifest(new Uint8Array([0x7b, 0xff, 0x7d]), "pkg.tar");
    } catch (e) {
      caught = e;
    }
    expect((caught as PackageError).code).toBe("PKG_MANIFEST_INVALID");
  });

  test("summarises the schema issue with its location", () => {
    expect(invalid({ ...valid, schema: 2 }).message).toContain("schema");
    expect(invalid({ ...valid, version: 0 }).message).toContain("version");
    expect(invalid({ ...valid, version: 1.5 }).message).toContain("version");
    expect(invalid({ ...valid, type: "9bad" }).message).toContain("type");
    expect(invalid({ ...valid, type: "a".repeat(65) }).message).toContain("type");
    expect(invalid({ ...valid, created: "yesterday" }).message).toContain("created");
    const e = invalid({ ...valid, files: [{ path: "a", size: 1, sha384: hex("A") }] });
    expect(e.message).toContain("files.0.sha384");
  });

  test("is strict: unknown fields are refused at every level", () => {
    expect(invalid({ ...valid, extra: true }).message).toContain("extra");
    invalid({ ...valid, files: [{ ...valid.files[0], mode: 420 }] });
  });

  test("refuses unsafe or non-canonical payload paths", () => {
    for (const path of ["../x", "/abs", "a/../b", "./a", "a//b", "a\\b", "", `${"p".repeat(248)}`]) {
      invalid({ ...valid, files: [{ path, size: 1, sha384: hex("a") }] });
    }
  });

  test("requires files sorted by byte order, unique, and not differing only in case", () => {
    const f = (path: string) => ({ path, size: 1, sha384: hex("c") });
    expect(invalid({ ...valid, files: [f("b"), f("a")] }).message).toContain("sorted");
    invalid({ ...valid, files: [f("a"), f("a")] });
    invalid({ ...valid, files: [f("A"), f("a")] });
    // byte order, not locale order: "B" (0x42) sorts before "a" (0x61); "é" after "z"
    expect(
      parseManifest(bytesOf({ ...valid, files: [f("B"), f("a"), f("z"), f("é")] }), "p").files,
    ).toHaveLength(4);
    invalid({ ...valid, files: [f("a"), f("B")] });
  });

  test("refuses negative or fractional sizes", () => {
    invalid({ ...valid, files: [{ path: "a", size: -1, sha384: hex("a") }] });
    invalid({ ...valid, files: [{ path: "a", size: 0.5, sha384: hex("a") }] });
  });
});
