import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { buildAllowlistFromText, parseThumbprintText } from "./build.ts";
import { Allowlist, validateAllowlist } from "./reader.ts";

const EXAMPLE = join(import.meta.dir, "../../examples/Hmpa_data/thumbprints.txt");

describe("parseThumbprintText", () => {
  test("skips blank and comment lines, trims, handles CRLF, keeps inner #", () => {
    const text =
      "# header\r\n\r\n  StackPivot:AB \r\n\t# indented comment\nLoadLib:C:\\a#b.dll\n#StackExec:00\n";
    expect(parseThumbprintText(text)).toEqual(["StackPivot:AB", "LoadLib:C:\\a#b.dll"]);
  });

  test("rejects an over-long thumbprint with its line number", () => {
    try {
      parseThumbprintText(`# x\nStackPivot:01\n${"y".repeat(5000)}\n`, { file: "in.txt" });
      throw new Error("accepted");
    } catch (e) {
      expect(e).toBeInstanceOf(HandlerError);
      const err = e as HandlerError;
      expect(err.code).toBe("HND_HMPA_BAD_THUMBPRINT");
      expect(err.file).toBe("in.txt");
      expect(err.message).toStartWith("in.txt:3:");
      expect(err.details).toEqual({ line: 3 });
    }
  });
});

describe("buildAllowlistFromText", () => {
  test("the example list builds into a valid file that allows every listed thumbprint", () => {
    const text = readFileSync(EXAMPLE, "utf8");
    const thumbprints = parseThumbprintText(text);
    expect(thumbprints.length).toBeGreaterThanOrEqual(50);
    for (const t of thumbprints) expect(t).toMatch(/^[A-Za-z]+:[0-9A-Fa-f]{64}$/);
    const bytes = buildAllowlistFromText(text);
    validateAllowlist(bytes);
    const allowlist = Allowlist.from(bytes);
    const hexCased = (t: string, f: (hex: string) => string) => t.replace(/[0-9A-Fa-f]+$/, f);
    expect(allowlist.size).toBe(new Set(thumbprints.map((t) => hexCased(t, (h) => h.toLowerCase()))).size);
    for (const t of thumbprints) {
      expect(allowlist.has(t)).toBe(true);
      expect(allowlist.has(hexCased(t, (h) => h.toUpperCase()))).toBe(true);
      // Mitigation names are case-sensitive.
      expect(allowlist.has(t.replace(/^[A-Za-z]+/, (name) => name.toLowerCase()))).toBe(false);
    }
    expect(allowlist.has(`StackPivot:${"0".repeat(64)}`)).toBe(false);
  });
});
