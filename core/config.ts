/**
 * Agent configuration. Embedded defaults make `agent run` work with no file;
 * a JSON config file (validated with zod at the edge) overrides them, and CLI
 * flags override the file. A broken config file is a ConfigError naming the
 * file and the offending field — the agent refuses to start on it rather
 * than guessing.
 */

import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CONFIG_DEFAULTS_JSON } from "./config-defaults.generated.ts";
import { SECTIONS } from "./config-sections.ts";
import { ConfigError } from "./errors.ts";
import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

export const AgentConfigSchema = lazySchema(() => z.strictObject(SECTIONS));

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** What a loaded config was made from (agent.json + overrides, before defaults): origins in `agent config show`. */
export interface ConfigSource {
  input: Record<string, unknown>;
  file?: string;
}
const sources = new WeakMap<AgentConfig, ConfigSource>();
/** The source loadConfig recorded; undefined for configs built another way (tests, parseConfig). */
export const configSource = (config: AgentConfig): ConfigSource | undefined => sources.get(config);
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

export function parseConfig(input: unknown, file = "<inline>"): AgentConfig {
  const result = safeParseAgentConfig(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join(".") || "(root)";
    throw new ConfigError("CFG_INVALID", `${file}: ${where}: ${issue?.message ?? "invalid"}`, {
      file,
      details: { issues: result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) },
    });
  }
  return result.data;
}

/** `AgentConfigSchema.safeParse`, with the same result, building only the sections `input` names. */
export function safeParseAgentConfig(input: unknown): ReturnType<typeof AgentConfigSchema.safeParse> {
  const data = parseBySection(input);
  return data
    ? ({ success: true, data } as ReturnType<typeof AgentConfigSchema.safeParse>)
    : AgentConfigSchema.safeParse(input);
}

/** `AgentConfigSchema.parse` (throws its ZodError), building only the sections `input` names. */
export function parseAgentConfig(input: unknown): AgentConfig {
  return parseBySection(input) ?? AgentConfigSchema.parse(input);
}

/**
 * `config` with the sections `changed` names parsed again (each throws its ZodError as the whole
 * schema would) and every other section kept as it was parsed: for a change to a few keys of a
 * config already parsed, without building every section's schema (the feature gates, gates.ts).
 */
export function reparseSections(config: AgentConfig, changed: Record<string, unknown>): AgentConfig {
  const out: Record<string, unknown> = { ...config };
  for (const [k, v] of Object.entries(changed)) {
    if (!Object.hasOwn(SECTIONS, k)) throw new ConfigError("CFG_INVALID", `${k}: not a config section`);
    out[k] = (SECTIONS[k as keyof typeof SECTIONS] as z.ZodMiniType).parse(v);
  }
  return out as AgentConfig;
}

const SECTION_NAMES = Object.keys(SECTIONS) as (keyof typeof SECTIONS)[];

/**
 * The parse of AgentConfigSchema, built only for the sections `input` names: the others are
 * CONFIG_DEFAULTS, the schema's own output for an absent section (generated from it, and
 * config-defaults.test.ts fails when they part). Building a zod schema costs ~30 µs per instance
 * in a one-shot command (lazy-schema.ts), and the whole config schema was ~10 ms of `agent scan
 * --state S`'s CLI, which names no section. Undefined for anything this cannot parse as the whole
 * schema would — not a plain object, an unknown key, a section that fails — so that the whole
 * schema parses it and reports the error exactly as before.
 */
function parseBySection(input: unknown): AgentConfig | undefined {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return undefined;
  if (Object.getPrototypeOf(input) !== Object.prototype && Object.getPrototypeOf(input) !== null)
    return undefined;
  const given = input as Record<string, unknown>;
  for (const k of Object.keys(given)) if (!Object.hasOwn(SECTIONS, k)) return undefined;
  const defaults = JSON.parse(CONFIG_DEFAULTS_JSON) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of SECTION_NAMES) {
    if (given[k] === undefined) {
      out[k] = defaults[k];
      continue;
    }
    const r = (SECTIONS[k] as z.ZodMiniType).safeParse(given[k]);
    if (!r.success) return undefined;
    out[k] = r.data;
  }
  return out as AgentConfig;
}

/** Reads a config file (if given or present in the state dir) and applies overrides on top. */
export function loadConfig(opts: { file?: string; overrides?: AgentConfigInput } = {}): AgentConfig {
  let fromFile: Record<string, unknown> = {};
  const file = opts.file ? resolve(opts.file) : undefined;
  if (file) {
    if (!existsSync(file)) throw new ConfigError("CFG_NOT_FOUND", `${file}: config file not found`, { file });
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError("CFG_UNREADABLE", `${file}: ${(e as Error).message}`, { file, cause: e });
    }
    try {
      fromFile = JSON.parse(text);
    } catch (e) {
      throw new ConfigError("CFG_SYNTAX", `${file}: not valid JSON: ${(e as Error).message}`, {
        file,
        cause: e,
      });
    }
  }
  const input = deepMerge(fromFile, opts.overrides ?? {});
  const config = parseConfig(input, file);
  sources.set(config, { input, ...(file ? { file } : {}) });
  return config;
}

/** Objects merge key by key (over wins; undefined leaves base); arrays and scalars replace. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] =
      v && typeof v === "object" && !Array.isArray(v) && b && typeof b === "object" && !Array.isArray(b)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

// Re-exported: the paths live apart so the control client does not evaluate the config schemas.
export { statePaths } from "./state-paths.ts";
