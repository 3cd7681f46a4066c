/**
 * One APPFEED / USERAPPFEED evaluation: a fresh Lua state (nothing carries
 * over between runs), the rule files loaded with the read-only API of
 * env.ts, every app's detector run in its own metered call. The result
 * says, per app, what it proposed to exclude, whether it failed (it then
 * keeps its previous exclusions) or was refused (nothing it proposed is
 * used).
 */

import { HandlerError } from "../../../core/errors.ts";
import type { RuleLimits, RuleSource } from "../lua/format.ts";
import { openHostRuntime } from "../lua/host-runtime.ts";
import type { LuaSandbox, LuaValue } from "../lua/sandbox.ts";
import type { AppfeedEnv } from "./env.ts";
import runtimeSource from "./runtime.lua" with { type: "text" };

export interface AppfeedRuleset {
  type: string;
  version: number;
  rules: RuleSource[];
  limits: RuleLimits;
}

export interface ProposedExclusion {
  kind: "path" | "process" | "sha256" | "signer";
  value: string;
  scope: ("scan" | "onAccess" | "behavior" | "lookups")[];
  reason: string;
}

export interface AppResult {
  id: string;
  description: string;
  /** Payload path of the rule file that defined it. */
  file: string;
  /** "detected": proposed exclusions; "absent": ran, proposed none; "failed": keeps its previous set; "refused": tried something forbidden. */
  outcome: "detected" | "absent" | "failed" | "refused";
  exclusions: ProposedExclusion[];
  messages: string[];
  error?: string;
  ms: number;
}

/** Why a package's rules were not run at all (USERAPPFEED without a verified tenant signature). */
export interface RunHold {
  code: string;
  /** The health level the feed raises it at: "info" leaves health green. */
  level: "info" | "amber";
  message: string;
}

export interface AppfeedRun {
  type: string;
  version: number;
  ranAt: string;
  apps: AppResult[];
  /** Set when the rules were held inert: nothing ran, nothing is excluded. */
  held?: RunHold;
}

interface RawResult {
  id: string;
  description: string;
  file: string;
  exclusions: ProposedExclusion[];
  messages: string[];
  refused: string | false;
  error: string | false;
  detected: boolean;
  ms: number;
}

async function open(ruleset: AppfeedRuleset, env: AppfeedEnv): Promise<{ sandbox: LuaSandbox; rt: number }> {
  return openHostRuntime({
    ruleset,
    runtimeSource,
    chunkName: "=appfeed-runtime",
    loadFailedCode: "HND_APPFEED_LOAD_FAILED",
    host: (fn) => ({
      installed: fn(() => env.installed() as unknown as LuaValue),
      app: fn((name) => (env.installed().find((a) => a.name === name) ?? null) as unknown as LuaValue),
      exists: fn((p) => env.exists(p as string)),
      stat: fn((p) => env.stat(p as string) as LuaValue),
      read: fn((p, max) => env.read(p as string, max as number | undefined)),
      list: fn((p) => env.list(p as string)),
      query: fn((tool, args) => env.query(tool as string, (args ?? []) as string[]) as unknown as LuaValue),
    }),
  });
}

/** Loads the rule files and lists their apps without running a detector (validation at load). */
export async function listApps(
  ruleset: AppfeedRuleset,
  env: AppfeedEnv,
): Promise<{ id: string; description: string; file: string }[]> {
  const { sandbox, rt } = await open(ruleset, env);
  try {
    const apps = sandbox.call(rt, "apps")[0] as { id: string; description: string; file: string }[];
    if (!Array.isArray(apps) || apps.length === 0) {
      throw new HandlerError(
        "HND_APPFEED_LOAD_FAILED",
        `${ruleset.type} v${ruleset.version}: no app{} defined`,
      );
    }
    return apps.map((a) => ({ ...a, file: fileOf(ruleset, a.file) }));
  } finally {
    sandbox.close();
  }
}

const fileOf = (ruleset: AppfeedRuleset, name: string) =>
  ruleset.rules.find((r) => r.name === name)?.file ?? name;

/** Runs every detector once. */
export async function runAppfeed(
  ruleset: AppfeedRuleset,
  env: AppfeedEnv,
  now = new Date(),
): Promise<AppfeedRun> {
  const { sandbox, rt } = await open(ruleset, env);
  try {
    const raw = (sandbox.call(rt, "run")[0] ?? []) as RawResult[];
    return {
      type: ruleset.type,
      version: ruleset.version,
      ranAt: now.toISOString(),
      apps: raw.map((r) => ({
        id: r.id,
        description: r.description,
        file: fileOf(ruleset, r.file),
        outcome: r.refused ? "refused" : r.error ? "failed" : r.detected ? "detected" : "absent",
        exclusions: r.refused ? [] : (r.exclusions ?? []),
        messages: r.messages ?? [],
        ...(r.refused ? { error: `refused: ${r.refused}` } : r.error ? { error: r.error } : {}),
        ms: Math.round((r.ms ?? 0) * 1000) / 1000,
      })),
    };
  } finally {
    sandbox.close();
  }
}
