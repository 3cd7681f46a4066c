/**
 * The Lua rules package: the same payload layout for Behavior,
 * ProductRulesFeed and RepairKit (docs/rules.md, "Package format").
 *
 *   payload/rules.json            plaintext manifest: names, files, limits, settings
 *   payload/lua/<name>.lua.enc    one AES-256-GCM envelope per rule (crypto.ts)
 *
 * `validateRulesPackage` checks everything that needs no key (it runs in a
 * handler's pure validate()); `openRulesPackage` also decrypts. Plaintext
 * Lua in a package is refused: a build pipeline that forgot to encrypt
 * must not ship readable rules by accident.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { HandlerError } from "../../../core/errors.ts";
import type { ContentView } from "../../../core/handler/contract.ts";
import { lazySchema } from "../../../core/schema/lazy-schema.ts";
import { z } from "../../../core/schema/zod.ts";
import { decryptRule, encryptRule, envelopeKeyId, KEY_ID_RE, type Keyring } from "./crypto.ts";

export const RULES_MANIFEST = "rules.json";
export const KEYRING_FILE = "content-keys.json";
export const RULE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_RULES = 2000;
export const MAX_RULE_BYTES = 256 * 1024;

/**
 * Per-call limits for each rule. Content may tighten or loosen them within
 * these bounds; the bounds are the agent's, not the content's.
 */
export const RuleLimitsSchema = lazySchema(() =>
  z.strictObject({
    /** VM instructions per call. */
    instructions: z._default(z.int().check(z.gte(1000), z.lte(100_000_000)), 1_000_000),
    /** Heap growth per call, KiB. */
    callMemoryKb: z._default(z.int().check(z.gte(64), z.lte(64 * 1024)), 4096),
    /** Detections plus log output per call, bytes. */
    outputBytes: z._default(z.int().check(z.gte(256), z.lte(1024 * 1024)), 16 * 1024),
    /**
     * Wall-clock ceiling per call, ms: the backstop for work no instruction
     * count sees (a native function, a long-string comparison). Bounded well
     * below the host's call timeout.
     */
    callMs: z._default(z.int().check(z.gte(1), z.lte(10_000)), 50),
    /** Faults (errors or exceeded limits) before the rule is disabled. */
    maxFaults: z._default(z.int().check(z.gte(1), z.lte(1000)), 3),
    /** Hard cap on the whole Lua state, MiB. */
    stateMemoryMb: z._default(z.int().check(z.gte(4), z.lte(1024)), 64),
  }),
);
export type RuleLimits = z.infer<typeof RuleLimitsSchema>;

export const RulesManifestSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    format: z.literal("outpost-lua/1"),
    contentType: z.string().check(z.regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/)),
    encryption: z.strictObject({
      alg: z.literal("AES-256-GCM"),
      keyId: z.string().check(z.regex(KEY_ID_RE)),
    }),
    limits: z.prefault(RuleLimitsSchema, {}),
    rules: z
      .array(
        z.strictObject({
          name: z.string().check(z.regex(RULE_NAME_RE)),
          file: z.string().check(z.regex(/^lua\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.lua\.enc$/)),
          /** Plaintext bytes. */
          size: z.int().check(z.gte(0), z.lte(MAX_RULE_BYTES)),
        }),
      )
      .check(z.minLength(1), z.maxLength(MAX_RULES)),
    /** Type-specific settings; each handler validates its own. */
    settings: z._default(z.record(z.string(), z.unknown()), {}),
  }),
);
export type RulesManifest = z.infer<typeof RulesManifestSchema>;

export interface RuleSource {
  name: string;
  /** Payload path of the encrypted file (or a local path for `rules test`). */
  file: string;
  source: string;
}

/** A ProductRulesFeed library as Behavior loads it (plain data: it crosses handlers). */
export interface LibraryModules {
  version: number;
  modules: RuleSource[];
  limits: RuleLimits;
}

function fail(code: string, file: string, why: string): HandlerError {
  return new HandlerError(code, `${file}: ${why}`, { file });
}

/** Structure, names, files and envelope framing. Needs no key. */
export function validateRulesPackage(view: ContentView): RulesManifest {
  if (!view.files.includes(RULES_MANIFEST)) {
    throw fail(
      "HND_RULES_MANIFEST_MISSING",
      RULES_MANIFEST,
      `${view.type} v${view.version} has no rules.json`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(view.readText(RULES_MANIFEST));
  } catch (e) {
    throw fail("HND_RULES_MANIFEST_INVALID", RULES_MANIFEST, `not valid JSON (${(e as Error).message})`);
  }
  const r = RulesManifestSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw fail(
      "HND_RULES_MANIFEST_INVALID",
      RULES_MANIFEST,
      `${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}`,
    );
  }
  const m = r.data;
  if (m.contentType !== view.type) {
    throw fail("HND_RULES_WRONG_TYPE", RULES_MANIFEST, `rules are for ${m.contentType}, not ${view.type}`);
  }
  const plain = view.files.filter((f) => f.endsWith(".lua"));
  if (plain.length > 0) {
    throw fail(
      "HND_RULES_NOT_ENCRYPTED",
      plain[0]!,
      "plaintext Lua in a rules package; rules must be encrypted",
    );
  }
  const names = new Set<string>();
  const files = new Set<string>();
  for (const rule of m.rules) {
    if (names.has(rule.name))
      throw fail("HND_RULES_MANIFEST_INVALID", RULES_MANIFEST, `rule ${rule.name} twice`);
    if (files.has(rule.file))
      throw fail("HND_RULES_MANIFEST_INVALID", RULES_MANIFEST, `file ${rule.file} twice`);
    names.add(rule.name);
    files.add(rule.file);
    if (!view.files.includes(rule.file)) {
      throw fail("HND_RULES_FILE_MISSING", rule.file, `listed in rules.json but not in the package`);
    }
    envelopeKeyId(view.read(rule.file), rule.file);
  }
  return m;
}

/** Validates, then decrypts every rule. */
export function openRulesPackage(
  view: ContentView,
  keyring: Keyring,
): { manifest: RulesManifest; rules: RuleSource[] } {
  const manifest = validateRulesPackage(view);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const rules = manifest.rules.map((rule) => {
    const plain = decryptRule(view.read(rule.file), keyring, { contentType: view.type, path: rule.file });
    if (plain.length !== rule.size) {
      throw fail(
        "HND_RULES_SIZE_MISMATCH",
        rule.file,
        `decrypts to ${plain.length} bytes, rules.json says ${rule.size}`,
      );
    }
    let source: string;
    try {
      source = utf8.decode(plain);
    } catch {
      throw fail("HND_RULES_NOT_UTF8", rule.file, "rule source is not UTF-8");
    }
    return { name: rule.name, file: rule.file, source };
  });
  return { manifest, rules };
}

/** What a vendor's rules source directory may hold beside its `*.lua` files. */
export const RulesSourceConfigSchema = lazySchema(() =>
  z.strictObject({
    limits: z.optional(z.partial(RuleLimitsSchema)),
    settings: z.optional(z.record(z.string(), z.unknown())),
    /** Load order (names); the rest follow in name order. Library modules may depend on earlier ones. */
    order: z.optional(z.array(z.string().check(z.regex(RULE_NAME_RE)))),
  }),
);

/**
 * Vendor side: encrypts a directory of `*.lua` sources (plus an optional
 * `rules.json` with limits/settings/order) into payload files ready for
 * `packDirectory`. Returns payload path → bytes.
 */
export function encryptRulesDir(opts: {
  srcDir: string;
  contentType: string;
  key: { id: string; key: Uint8Array };
}): Map<string, Uint8Array> {
  const { srcDir, contentType, key } = opts;
  const configFile = join(srcDir, RULES_MANIFEST);
  let config: z.infer<typeof RulesSourceConfigSchema> = {};
  if (existsSync(configFile)) {
    const r = RulesSourceConfigSchema.safeParse(JSON.parse(readFileSync(configFile, "utf8")));
    if (!r.success) {
      const issue = r.error.issues[0];
      throw fail("HND_RULES_SOURCE_INVALID", configFile, `${issue?.path.join(".")}: ${issue?.message}`);
    }
    config = r.data;
  }
  const sources = readdirSync(srcDir)
    .filter((f) => f.endsWith(".lua") && statSync(join(srcDir, f)).isFile())
    .sort();
  if (sources.length === 0) throw fail("HND_RULES_SOURCE_INVALID", srcDir, "no *.lua files");
  const byName = new Map(sources.map((f) => [basename(f, ".lua"), f]));
  for (const name of byName.keys()) {
    if (!RULE_NAME_RE.test(name))
      throw fail("HND_RULES_SOURCE_INVALID", join(srcDir, `${name}.lua`), "bad rule name");
  }
  const order = [...(config.order ?? [])];
  for (const name of order) {
    if (!byName.has(name))
      throw fail("HND_RULES_SOURCE_INVALID", configFile, `order names ${name}, which has no .lua file`);
  }
  for (const name of byName.keys()) if (!order.includes(name)) order.push(name);

  const out = new Map<string, Uint8Array>();
  const rules: RulesManifest["rules"] = [];
  for (const name of order) {
    const plain = new Uint8Array(readFileSync(join(srcDir, byName.get(name)!)));
    if (plain.length > MAX_RULE_BYTES)
      throw fail("HND_RULES_SOURCE_INVALID", byName.get(name)!, "rule too large");
    const file = `lua/${name}.lua.enc`;
    out.set(file, encryptRule(plain, key, { contentType, path: file }));
    rules.push({ name, file, size: plain.length });
  }
  const manifest: RulesManifest = {
    schema: 1,
    format: "outpost-lua/1",
    contentType,
    encryption: { alg: "AES-256-GCM", keyId: key.id },
    limits: RuleLimitsSchema.parse(config.limits ?? {}),
    rules,
    settings: config.settings ?? {},
  };
  out.set(RULES_MANIFEST, new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`));
  return out;
}
