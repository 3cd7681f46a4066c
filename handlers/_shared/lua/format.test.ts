import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ContentView, viewOverBytes } from "../../../core/handler/contract.ts";
import { Keyring } from "./crypto.ts";
import { encryptRulesDir, openRulesPackage, validateRulesPackage } from "./format.ts";
import { rulesPayload, testKey } from "./testkit.ts";

function view(type: string, files: Map<string, Uint8Array> | Record<string, Uint8Array>): ContentView {
  const m = files instanceof Map ? files : new Map(Object.entries(files));
  return viewOverBytes({
    type,
    version: 1,
    signingTime: new Date(0).toISOString(),
    files: [...m.keys()],
    read: (p) => {
      const d = m.get(p);
      if (!d) throw new Error(`${p} missing`);
      return d;
    },
    readText: (p) => new TextDecoder().decode(m.get(p)),
  });
}

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return "no error";
};

describe("rules packages", () => {
  test("a vendor source directory encrypts into a payload the agent opens in rules.json order", () => {
    const key = testKey("k1");
    const src = mkdtempSync(join(tmpdir(), "outpost-rules-src-"));
    try {
      writeFileSync(join(src, "b.lua"), "return 'b'");
      writeFileSync(join(src, "a.lua"), "return 'a'");
      writeFileSync(join(src, "z.lua"), "return 'z'");
      writeFileSync(
        join(src, "rules.json"),
        JSON.stringify({ order: ["z"], limits: { instructions: 5000 }, settings: { x: 1 } }),
      );
      const files = encryptRulesDir({ srcDir: src, contentType: "Behavior", key });
      const { manifest, rules } = openRulesPackage(view("Behavior", files), Keyring.parse(key.file, "k"));
      expect(rules.map((r) => [r.name, r.source])).toEqual([
        ["z", "return 'z'"],
        ["a", "return 'a'"],
        ["b", "return 'b'"],
      ]);
      expect(manifest.limits.instructions).toBe(5000);
      expect(manifest.settings).toEqual({ x: 1 });
      expect(manifest.encryption).toEqual({ alg: "AES-256-GCM", keyId: "k1" });
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  });

  test("structural problems are refused before any key is needed, each with its code", () => {
    const key = testKey();
    const ok = rulesPayload("Behavior", { r: "return 1" }, key);
    expect(codeOf(() => validateRulesPackage(view("Behavior", ok)))).toBe("no error");
    expect(codeOf(() => validateRulesPackage(view("RepairKit", ok)))).toBe("HND_RULES_WRONG_TYPE");
    const { "rules.json": _m, ...noManifest } = ok;
    expect(codeOf(() => validateRulesPackage(view("Behavior", noManifest)))).toBe(
      "HND_RULES_MANIFEST_MISSING",
    );
    const { "lua/r.lua.enc": _r, ...noFile } = ok;
    expect(codeOf(() => validateRulesPackage(view("Behavior", noFile)))).toBe("HND_RULES_FILE_MISSING");
    const plain = { ...ok, "lua/r.lua.enc": new TextEncoder().encode("return 1") };
    expect(codeOf(() => validateRulesPackage(view("Behavior", plain)))).toBe("HND_RULES_ENVELOPE_INVALID");
    const edit = (fn: (m: { limits: Record<string, number>; rules: { size: number }[] }) => void) => {
      const m = JSON.parse(new TextDecoder().decode(ok["rules.json"]));
      fn(m);
      return { ...ok, "rules.json": new TextEncoder().encode(JSON.stringify(m)) };
    };
    // Content may set limits only within the agent's bounds.
    const greedy = edit((m) => {
      m.limits.instructions = 10 ** 12;
    });
    expect(codeOf(() => validateRulesPackage(view("Behavior", greedy)))).toBe("HND_RULES_MANIFEST_INVALID");
    const sized = JSON.parse(new TextDecoder().decode(ok["rules.json"]));
    sized.rules[0].size += 1;
    const wrongSize = { ...ok, "rules.json": new TextEncoder().encode(JSON.stringify(sized)) };
    expect(codeOf(() => openRulesPackage(view("Behavior", wrongSize), Keyring.parse(key.file, "k")))).toBe(
      "HND_RULES_SIZE_MISMATCH",
    );
  });
});
