import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decryptRule, encryptRule, envelopeKeyId, Keyring, newKeyring } from "./crypto.ts";

const keyOf = (file: ReturnType<typeof newKeyring>) => ({
  id: file.keys[0]!.id,
  key: new Uint8Array(Buffer.from(file.keys[0]!.key, "base64")),
});
const bind = { contentType: "Behavior", path: "lua/r.lua.enc" };
const text = new TextEncoder().encode('on("process.start", function(e) end)');

describe("rule envelopes (AES-256-GCM)", () => {
  test("round trip; the ciphertext does not contain the plaintext", () => {
    const file = newKeyring("k1");
    const sealed = encryptRule(text, keyOf(file), bind);
    expect(Buffer.from(sealed).includes(Buffer.from("process.start"))).toBe(false);
    expect(envelopeKeyId(sealed, bind.path)).toBe("k1");
    expect(new TextDecoder().decode(decryptRule(sealed, Keyring.parse(file, "k.json"), bind))).toBe(
      new TextDecoder().decode(text),
    );
  });

  test("every altered byte, another file name or content type, or another key fails authentication", () => {
    const file = newKeyring("k1");
    const ring = Keyring.parse(file, "k.json");
    const sealed = encryptRule(text, keyOf(file), bind);
    for (let i = 0; i < sealed.length; i++) {
      const bad = sealed.slice();
      bad[i]! ^= 0x80;
      let code: string | undefined;
      try {
        decryptRule(bad, ring, bind);
      } catch (e) {
        code = (e as { code: string }).code;
      }
      expect(["HND_RULES_DECRYPT_FAILED", "HND_RULES_ENVELOPE_INVALID", "HND_RULES_KEY_UNKNOWN"]).toContain(
        code!,
      );
    }
    expect(() => decryptRule(sealed, ring, { ...bind, path: "lua/other.lua.enc" })).toThrow(
      /authentication failed/,
    );
    expect(() => decryptRule(sealed, ring, { ...bind, contentType: "RepairKit" })).toThrow(
      /authentication failed/,
    );
    const impostor = newKeyring("k1");
    expect(() => decryptRule(sealed, Keyring.parse(impostor, "x.json"), bind)).toThrow(
      /HND_RULES|authentication/,
    );
  });

  test("key rotation: a keyring holding old and new ids opens both; an unknown id is named", () => {
    const old = newKeyring("2025-a");
    const next = newKeyring("2026-a");
    const both = Keyring.parse({ schema: 1, keys: [...old.keys, ...next.keys] }, "ring.json");
    for (const k of [old, next]) {
      expect(decryptRule(encryptRule(text, keyOf(k), bind), both, bind)).toEqual(text);
    }
    const onlyNew = Keyring.parse(next, "ring.json");
    expect(() => decryptRule(encryptRule(text, keyOf(old), bind), onlyNew, bind)).toThrow(
      "lua/r.lua.enc: sealed with content key 2025-a, which is not provisioned (have: 2026-a)",
    );
  });

  test("keyring files: must exist, parse, and not be world-readable", () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-keyring-"));
    try {
      const f = join(dir, "content-keys.json");
      expect(() => Keyring.load(f)).toThrow(expect.objectContaining({ code: "HND_RULES_KEYRING_MISSING" }));
      writeFileSync(f, JSON.stringify(newKeyring("k1")), { mode: 0o644 });
      chmodSync(f, 0o644);
      expect(() => Keyring.load(f)).toThrow(expect.objectContaining({ code: "HND_RULES_KEYRING_MODE" }));
      chmodSync(f, 0o600);
      expect(Keyring.load(f).ids()).toEqual(["k1"]);
      writeFileSync(f, JSON.stringify({ schema: 1, keys: [{ id: "k1", key: "c2hvcnQ=" }] }));
      expect(() => Keyring.load(f)).toThrow(expect.objectContaining({ code: "HND_RULES_KEYRING_INVALID" }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
