/**
 * `contentctl rules …`: the vendor side of Lua content (Behavior,
 * ProductRulesFeed, RepairKit).
 *
 *   contentctl rules keygen --out content-key.json [--id 2026-a] [--add]
 *   contentctl rules encrypt SRC --type Behavior --key content-key.json --out PAYLOAD_DIR
 *   contentctl rules pack SRC --type Behavior --version 7 --keys KEYS --key content-key.json --out Behavior-7.opkg
 *   contentctl rules pack SRC --type USERAPPFEED … [--tenant-keys TENANT_DIR]
 *
 * USERAPPFEED rules are the tenant's: with --tenant-keys they carry the
 * tenant's signature. Without it the package is still made (the vendor's
 * example, a draft) but carries none, and agents hold its rules inert —
 * installed, never run — until the tenant signs them (a warning says so;
 * docs/exclusions.md, T1).
 *
 * SRC holds `*.lua` (one rule or library module each, named after the file)
 * and optionally `rules.json` with `limits`, `settings` and `order`
 * (docs/rules.md, "Package format").
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { defineCommand } from "citty";
import { keyringFile, validatePayloadDir } from "../../../core/cli/contentctl/validate.ts";
import { printErr, printJson, printText, UsageError } from "../../../core/cli/output.ts";
import { sha384Hex } from "../../../core/crypto/digest.ts";
import { KEY_FILES, loadSigningKeys } from "../../../core/crypto/keys.ts";
import { HandlerError } from "../../../core/errors.ts";
import { atomicWriteFile } from "../../../core/fsutil.ts";
import { packDirectory } from "../../../core/package/pack.ts";
import { TENANT_ROOT_FILE, tenantSign } from "../tenant/signature.ts";
import { Keyring, type KeyringFile, KeyringSchema, newKeyring } from "./crypto.ts";
import { encryptRulesDir } from "./format.ts";

const LUA_TYPES = ["Behavior", "ProductRulesFeed", "RepairKit", "APPFEED", "USERAPPFEED"];

function checkType(type: string): void {
  if (!LUA_TYPES.includes(type)) {
    throw new UsageError("CLI_USAGE", `--type must be one of ${LUA_TYPES.join(", ")} (got ${type})`);
  }
}

/** The key to seal with: `--key-id`, or the newest in the file (the last one). */
export function sealingKey(file: string, id?: string): { id: string; key: Uint8Array } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new HandlerError("HND_RULES_KEYRING_INVALID", `${file}: ${(e as Error).message}`, { file });
  }
  const ring = Keyring.parse(json, file);
  const keys = (json as KeyringFile).keys;
  const chosen = id ?? keys[keys.length - 1]!.id;
  const key = ring.get(chosen);
  if (!key) throw new HandlerError("HND_RULES_KEY_UNKNOWN", `${file}: no key ${chosen}`, { file });
  return { id: chosen, key };
}

function writePayload(dir: string, files: Map<string, Uint8Array>): void {
  for (const [path, data] of files) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), data);
  }
}

const keygen = defineCommand({
  meta: { name: "keygen", description: "Create a content key (AES-256) in a keyring file, mode 0600" },
  args: {
    out: { type: "string", required: true, description: "keyring file to write" },
    id: { type: "string", description: "key id (default: content-<date>)" },
    add: { type: "boolean", default: false, description: "add a new key to an existing keyring (rotation)" },
    json: { type: "boolean", default: false, description: "print {file, id, keys} as JSON" },
  },
  run({ args }) {
    const id = args.id ?? `content-${new Date().toISOString().slice(0, 10)}`;
    const fresh = newKeyring(id);
    let ring: KeyringFile = fresh;
    if (existsSync(args.out)) {
      if (!args.add) throw new UsageError("CLI_USAGE", `${args.out} exists; use --add to add a key to it`);
      const existing = KeyringSchema.parse(JSON.parse(readFileSync(args.out, "utf8")));
      if (existing.keys.some((k) => k.id === id))
        throw new UsageError("CLI_USAGE", `${args.out} already has key ${id}`);
      ring = { schema: 1, keys: [...existing.keys, ...fresh.keys] };
    }
    atomicWriteFile(args.out, `${JSON.stringify(ring, null, 2)}\n`, 0o600);
    const result = { file: args.out, id, keys: ring.keys.map((k) => k.id) };
    if (args.json) printJson(result);
    else printText(`wrote ${args.out}: key ${id} (keyring holds ${result.keys.join(", ")})`);
    return result;
  },
});

const commonArgs = {
  src: {
    type: "positional",
    required: true,
    description: "directory of *.lua sources (+ optional rules.json)",
  },
  type: {
    type: "string",
    required: true,
    description: "Behavior, ProductRulesFeed, RepairKit, APPFEED or USERAPPFEED",
  },
  key: { type: "string", required: true, description: "keyring file holding the content key" },
  "key-id": { type: "string", description: "key to seal with (default: the newest in the keyring)" },
  json: { type: "boolean", default: false, description: "print the result as JSON" },
} as const;

const encrypt = defineCommand({
  meta: {
    name: "encrypt",
    description: "Encrypt Lua sources into a rules payload directory (rules.json + lua/*.lua.enc)",
  },
  args: {
    ...commonArgs,
    out: { type: "string", required: true, description: "payload directory to create" },
  },
  run({ args }) {
    checkType(args.type);
    const key = sealingKey(args.key, args["key-id"]);
    const files = encryptRulesDir({ srcDir: args.src, contentType: args.type, key });
    if (existsSync(args.out)) throw new UsageError("CLI_USAGE", `${args.out} exists; choose a new directory`);
    writePayload(args.out, files);
    const result = { dir: args.out, type: args.type, keyId: key.id, rules: files.size - 1 };
    if (args.json) printJson(result);
    else printText(`wrote ${args.out}: ${result.rules} encrypted ${args.type} rule file(s), key ${key.id}`);
    return result;
  },
});

const pack = defineCommand({
  meta: {
    name: "pack",
    description:
      "Encrypt Lua sources, have the agent's handler decrypt, compile and load them in its sandboxed host, then sign them as one content package",
  },
  args: {
    ...commonArgs,
    version: { type: "string", required: true, description: "content version (positive integer)" },
    keys: {
      type: "string",
      required: true,
      description: "signing key directory (signer.pem, signer.key, …)",
    },
    out: { type: "string", required: true, description: "package file to write" },
    "tenant-keys": {
      type: "string",
      description:
        "USERAPPFEED only: the tenant's key directory (contentctl keys init); its signer signs tenant.json, its root.pem is what agents trust for USERAPPFEED. Without it the rules are packed unsigned and agents hold them inert",
    },
  },
  async run({ args }) {
    checkType(args.type);
    const tenantKeys = args["tenant-keys"];
    if (tenantKeys !== undefined && args.type !== "USERAPPFEED") {
      throw new UsageError("CLI_USAGE", "--tenant-keys is for USERAPPFEED only");
    }
    const unsignedWarning =
      args.type === "USERAPPFEED" && tenantKeys === undefined
        ? "USERAPPFEED packed without a tenant signature (no --tenant-keys): agents install it but hold its rules inert — none runs, nothing is excluded — until it is repacked with the tenant's keys (docs/exclusions.md, T1)"
        : undefined;
    if (!/^[1-9][0-9]{0,15}$/.test(args.version))
      throw new UsageError("CLI_USAGE", "--version must be a positive integer");
    const key = sealingKey(args.key, args["key-id"]);
    const files = encryptRulesDir({ srcDir: args.src, contentType: args.type, key });
    const ruleFiles = files.size - 1;
    let workDirFiles = keyringFile(args.key);
    if (tenantKeys) {
      for (const [path, data] of await tenantSign(files, {
        type: args.type,
        version: Number(args.version),
        keys: await loadSigningKeys(tenantKeys),
      })) {
        files.set(path, data);
      }
      workDirFiles = {
        ...workDirFiles,
        [TENANT_ROOT_FILE]: new Uint8Array(readFileSync(join(tenantKeys, KEY_FILES.rootCert))),
      };
    }
    const work = mkdtempSync(join(tmpdir(), "outpost-rules-"));
    try {
      writePayload(work, files);
      // The agent's handler decrypts, compiles and loads the rules in its sandboxed host, with this key.
      await validatePayloadDir({
        type: args.type,
        version: Number(args.version),
        dir: work,
        workDirFiles,
        source: args.src,
      });
      const bytes = await packDirectory({
        type: args.type,
        version: Number(args.version),
        keys: await loadSigningKeys(args.keys),
        dir: work,
      });
      atomicWriteFile(args.out, bytes);
      const result = {
        file: args.out,
        type: args.type,
        version: Number(args.version),
        keyId: key.id,
        rules: ruleFiles,
        ...(args.type === "USERAPPFEED" ? { tenantSigned: tenantKeys !== undefined } : {}),
        ...(unsignedWarning ? { warning: unsignedWarning } : {}),
        sha384: sha384Hex(bytes),
        size: bytes.length,
      };
      if (unsignedWarning) printErr(`warning: ${unsignedWarning}`);
      if (args.json) printJson(result);
      else
        printText(
          `wrote ${args.out}: ${args.type} v${args.version}, ${result.rules} encrypted rule file(s), key ${key.id}`,
        );
      return result;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
});

export default defineCommand({
  meta: {
    name: "rules",
    description:
      "Lua rules: content keys, encryption and packaging (Behavior, ProductRulesFeed, RepairKit, APPFEED, USERAPPFEED)",
  },
  subCommands: { keygen, encrypt, pack },
});
