import { describe, expect, test } from "bun:test";
import { UpdateError } from "../errors.ts";
import {
  INDEX_PATH,
  INDEX_SIG_PATH,
  MAX_INDEX_BYTES,
  packagePath,
  parseIndex,
  type RepoIndex,
  serializeIndex,
} from "./index-format.ts";

const SHA = "ab".repeat(48);
const valid: RepoIndex = {
  schema: 1,
  group: "stable",
  serial: 3,
  issued: "2026-03-01T00:00:00.000Z",
  expires: "2026-03-08T00:00:00.000Z",
  content: {
    Hmpa_data: { version: 12, path: packagePath("Hmpa_data", 12, SHA), size: 2048, sha384: SHA },
  },
};

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function parseError(bytes: Uint8Array): UpdateError {
  try {
    parseIndex(bytes, "groups/stable/index.json");
  } catch (e) {
    expect(e).toBeInstanceOf(UpdateError);
    return e as UpdateError;
  }
  throw new Error("expected parseIndex to throw");
}

describe("parseIndex", () => {
  test("round-trips what serializeIndex writes", () => {
    expect(parseIndex(serializeIndex(valid), "index.json")).toEqual(valid);
    expect(valid.content.Hmpa_data?.path).toBe("packages/Hmpa_data/Hmpa_data-12-abababababababab.tar");
  });

  test("refuses oversize input before parsing it", () => {
    const big = new Uint8Array(MAX_INDEX_BYTES + 1).fill(0x20);
    const err = parseError(big);
    expect(err.code).toBe("IDX_TOO_LARGE");
    expect(err.file).toBe("groups/stable/index.json");
  });

  test("refuses non-JSON and invalid UTF-8", () => {
    expect(parseError(new TextEncoder().encode("{")).code).toBe("IDX_INVALID");
    expect(parseError(new Uint8Array([0x7b, 0xff, 0x7d])).code).toBe("IDX_INVALID");
  });

  const entry = valid.content.Hmpa_data!;
  const invalid: [string, unknown][] = [
    ["unknown top-level field", { ...valid, extra: true }],
    ["unknown entry field", { ...valid, content: { Hmpa_data: { ...entry, url: "http://x" } } }],
    ["schema 2", { ...valid, schema: 2 }],
    ["upper-case group", { ...valid, group: "Stable" }],
    ["group starting with a dash", { ...valid, group: "-x" }],
    ["serial 0", { ...valid, serial: 0 }],
    ["fractional serial", { ...valid, serial: 1.5 }],
    ["expires before issued", { ...valid, expires: "2026-02-01T00:00:00.000Z" }],
    ["non-ISO time", { ...valid, issued: "March 1st" }],
    ["bad type name", { ...valid, content: { "../x": entry } }],
    ["short sha384", { ...valid, content: { Hmpa_data: { ...entry, sha384: "abc" } } }],
    ["absolute path", { ...valid, content: { Hmpa_data: { ...entry, path: "/packages/a.tar" } } }],
    [
      "path outside packages/",
      { ...valid, content: { Hmpa_data: { ...entry, path: "groups/stable/index.json" } } },
    ],
    ["dot-dot path", { ...valid, content: { Hmpa_data: { ...entry, path: "packages/../../etc/passwd" } } }],
    ["encoded dot-dot", { ...valid, content: { Hmpa_data: { ...entry, path: "packages/%2e%2e/x.tar" } } }],
    ["URL as path", { ...valid, content: { Hmpa_data: { ...entry, path: "https://evil/x.tar" } } }],
    ["backslash path", { ...valid, content: { Hmpa_data: { ...entry, path: "packages\\x.tar" } } }],
    ["empty segment", { ...valid, content: { Hmpa_data: { ...entry, path: "packages//x.tar" } } }],
    ["zero size", { ...valid, content: { Hmpa_data: { ...entry, size: 0 } } }],
  ];
  for (const [name, value] of invalid) {
    test(`refuses ${name}`, () => {
      expect(parseError(encode(value)).code).toBe("IDX_INVALID");
    });
  }

  test("names the offending field in the message", () => {
    const err = parseError(encode({ ...valid, serial: -1 }));
    expect(err.message).toContain("groups/stable/index.json");
    expect(err.message).toContain("serial");
  });
});

test("index paths are per group and refuse bad group names", () => {
  expect(INDEX_PATH("stable")).toBe("groups/stable/index.json");
  expect(INDEX_SIG_PATH("beta-2")).toBe("groups/beta-2/index.p7s");
  expect(() => INDEX_PATH("../x")).toThrow(UpdateError);
});
