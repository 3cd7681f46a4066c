import { describe, expect, test } from "bun:test";
import { decodeStrictJson, parseStrictJson, StrictJsonError } from "./strict-json.ts";

const enc = new TextEncoder();

describe("strict JSON", () => {
  test("accepts ordinary JSON, equal keys in different objects, and key-like strings in values and arrays", () => {
    const text = '{"a":{"k":1},"b":{"k":2},"c":["k","k"],"d":"__proto__","e":"x\\"k\\":1"}';
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
  });

  test.each([
    ['{"a":1,"a":2}', 'duplicate key "a"'],
    ['{"a":1,"\\u0061":2}', 'duplicate key "a"'],
    ['{"x":[{"a":1,"b":{"c":1,"c":2}}]}', 'duplicate key "c"'],
    ['{"__proto__":{}}', 'forbidden key "__proto__"'],
    ['{"a":{"constructor":1}}', 'forbidden key "constructor"'],
    ['{"prototype":1}', 'forbidden key "prototype"'],
    ["\ufeff{}", "byte order mark"],
    ["{", "not JSON"],
  ])("%s → %s", (text, why) => {
    expect(() => parseStrictJson(text)).toThrow(why);
  });

  test("bytes: a UTF-8 BOM is refused, not silently dropped; invalid UTF-8 is refused", () => {
    expect(() => decodeStrictJson(new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode("{}")]))).toThrow(
      StrictJsonError,
    );
    expect(() => decodeStrictJson(new Uint8Array([0x22, 0xff, 0x22]))).toThrow("not valid UTF-8");
    expect(decodeStrictJson(enc.encode('{"a":[1,2]}'))).toEqual({ a: [1, 2] });
  });
});
