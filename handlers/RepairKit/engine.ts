/**
 * One RepairKit run: load a ruleset into a fresh sandbox, run every check
 * (each in its own metered call), carry out the agent actions the fixes
 * requested, then run the checks again as a dry run to confirm that what
 * was repaired stays repaired. The report says, per check, what was
 * checked, what was repaired and what failed.
 */

import { describeError } from "../../core/errors.ts";
import { type RuleLimits, RuleLimitsSchema, type RuleSource } from "../_shared/lua/format.ts";
import { openHostRuntime } from "../_shared/lua/host-runtime.ts";
import type { LuaSandbox, LuaValue } from "../_shared/lua/sandbox.ts";
import type { RepairEnv } from "./env.ts";
import type { AgentActions } from "./facts.ts";
import lastResortSource from "./last-resort.lua" with { type: "text" };
import {
  type CheckReport,
  type CheckStatus,
  executeActions,
  type FixReport,
  finalizeReport,
  type RepairReport,
  summarize,
} from "./report.ts";
import runtimeSource from "./runtime.lua" with { type: "text" };

export interface Ruleset {
  source: "delivered" | "baked-in";
  version: number | null;
  rules: RuleSource[];
  limits: RuleLimits;
  /** Why the delivered ruleset was not used. */
  fallbackReason?: string;
}

/** The ruleset compiled into the binary: repairs AutoUpdate only (state dir, trust store, schedule, index cache). */
export function bakedInRuleset(fallbackReason?: string): Ruleset {
  return {
    source: "baked-in",
    version: null,
    rules: [{ name: "last-resort", file: "(built into the agent)", source: lastResortSource }],
    limits: RuleLimitsSchema.parse({
      instructions: 20_000_000,
      callMemoryKb: 16 * 1024,
      outputBytes: 64 * 1024,
    }),
    ...(fallbackReason ? { fallbackReason } : {}),
  };
}

interface RawResult {
  id: string;
  description: string;
  file: string;
  messages: { level: string; text: string }[];
  fixes: FixReport[];
  problems: number;
  warnings: number;
  error: string | false;
  ms: number;
}

/** Loads a ruleset into a sandbox bound to `env`; throws HND_REPAIR_LOAD_FAILED naming the rule file. */
async function open(ruleset: Ruleset, env: RepairEnv): Promise<{ sandbox: LuaSandbox; rt: number }> {
  return openHostRuntime({
    ruleset,
    runtimeSource,
    chunkName: "=repair-runtime",
    loadFailedCode: "HND_REPAIR_LOAD_FAILED",
    host: (fn) => ({
      stat: fn((p) => env.stat(p) as LuaValue),
      list: fn((p) => env.list(p)),
      read: fn((p, max) => env.read(p, max)),
      mkdir: fn((p, mode) => env.mkdir(p, mode)),
      chmod: fn((p, mode) => env.chmod(p, mode)),
      chown: fn((p, uid, gid) => env.chown(p, uid, gid)),
      quarantine: fn((p) => env.quarantine(p)),
      remove: fn((p) => env.remove(p)),
      update_state: fn(() => env.updateState() as LuaValue),
      reset_update_state: fn(() => env.resetUpdateState() as LuaValue),
      lock: fn(() => env.lock() as LuaValue),
      remove_stale_lock: fn(() => env.removeStaleLock()),
      index_cache: fn(() => env.indexCache() as unknown as LuaValue),
      clear_index_cache: fn((g) => env.clearIndexCache(g)),
      trust: fn(() => env.trust() as LuaValue),
      trust_backup: fn(() => env.trustBackupNow()),
      trust_restore: fn(() => env.trustRestore()),
      trust_tighten: fn(() => env.trustTighten()),
      content: fn(() => env.content() as LuaValue),
      content_refetch: fn((t) => env.contentRefetch(t)),
      enable_updates: fn(() => env.enableUpdates() as LuaValue),
      request: fn((a, arg) => env.request(a, arg)),
    }),
  });
}

/** Compiles and loads a ruleset without running a check (RepairKit's load() proves its content this way). */
export async function checkRuleset(
  ruleset: Ruleset,
  env: RepairEnv,
): Promise<{ id: string; description: string }[]> {
  const { sandbox, rt } = await open(ruleset, env);
  try {
    return sandbox.call(rt, "checks")[0] as { id: string; description: string }[];
  } finally {
    sandbox.close();
  }
}

const MAX_PASSES = 3;

function repairedSomething(results: RawResult[], pass: number): boolean {
  return results.some((r) =>
    r.fixes.some((f) => f.kind === "repair" && f.status === "done" && (f.pass ?? 1) === pass),
  );
}

/** Folds a later repair pass into the first: only what it found or fixed is added. */
function mergePass(results: RawResult[], later: RawResult[], pass: number): void {
  for (const l of later) {
    const r = results.find((x) => x.id === l.id);
    if (!r || (l.problems === 0 && l.fixes.filter((f) => f.kind === "repair").length === 0 && !l.error))
      continue;
    r.messages.push(...l.messages.filter((m) => m.level !== "ok"));
    r.fixes.push(...l.fixes.map((f) => ({ ...f, pass })));
    r.problems += l.problems;
    r.warnings += l.warnings;
    if (l.error) r.error = l.error;
  }
}

function statusOf(r: RawResult, dryRun: boolean): CheckStatus {
  if (r.error) return "failed";
  const fixes = r.fixes.filter((f) => f.kind === "repair");
  if (fixes.some((f) => f.status === "failed")) return "failed";
  if (r.problems === 0) {
    if (fixes.some((f) => f.status === "done" || f.status === "requested")) return "repaired";
    return r.warnings > 0 ? "warning" : "ok";
  }
  if (dryRun) return fixes.some((f) => f.status === "planned") ? "would-repair" : "failed";
  return fixes.length > 0 && fixes.every((f) => f.status === "done" || f.status === "requested")
    ? "repaired"
    : "failed";
}

function toChecks(results: RawResult[], ruleset: Ruleset, dryRun: boolean): CheckReport[] {
  return results.map((r) => ({
    id: r.id,
    description: r.description,
    file: ruleset.rules.find((x) => x.name === r.file)?.file ?? r.file,
    status: statusOf(r, dryRun),
    messages: r.messages,
    fixes: r.fixes.map((f) => ({
      description: f.description,
      kind: f.kind,
      status: f.status,
      ...(f.error ? { error: f.error } : {}),
      ...(f.action ? { action: f.action } : {}),
      ...(f.arg ? { arg: f.arg } : {}),
    })),
    ...(r.error ? { error: r.error } : {}),
    ms: Math.round(r.ms * 1000) / 1000,
  }));
}

export async function runRepairKit(
  ruleset: Ruleset,
  env: RepairEnv,
  actions: AgentActions | undefined,
  opts: { dryRun: boolean; deferActions?: boolean; now?: () => Date },
): Promise<RepairReport> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now().toISOString();
  const { sandbox, rt } = await open(ruleset, env);
  try {
    await env.prepare(actions);
    sandbox.call(rt, "set_facts", env.luaFacts(opts.dryRun));
    const results = sandbox.call(rt, "run", opts.dryRun)[0] as RawResult[];
    // A repair can expose or unblock another (a restored trust store lets cached indexes be
    // checked): run again while the previous pass changed something, at most MAX_PASSES times.
    for (let pass = 2; !opts.dryRun && pass <= MAX_PASSES && repairedSomething(results, pass - 1); pass++) {
      await env.prepare(actions);
      sandbox.call(rt, "set_facts", env.luaFacts(false));
      mergePass(results, sandbox.call(rt, "run", false)[0] as RawResult[], pass);
    }
    const checks = toChecks(results, ruleset, opts.dryRun);
    const report: RepairReport = {
      startedAt,
      finishedAt: now().toISOString(),
      mode: env.mode,
      dryRun: opts.dryRun,
      stateDir: env.facts.stateDir,
      ruleset: {
        source: ruleset.source,
        version: ruleset.version,
        ...(ruleset.fallbackReason ? { fallbackReason: ruleset.fallbackReason } : {}),
      },
      checks,
      actions: [],
      summary: summarize(checks),
    };
    if (opts.dryRun) return report;
    if (opts.deferActions && env.queued.length > 0) return { ...report, pending: [...env.queued] };
    const outcomes = await executeActions(env.queued, actions);
    let verify: RepairReport | null = null;
    if (checks.some((c) => c.fixes.some((f) => f.kind === "repair" && f.status !== "planned"))) {
      await env.prepare(actions);
      sandbox.call(rt, "set_facts", env.luaFacts(true));
      verify = {
        ...report,
        dryRun: true,
        checks: toChecks(sandbox.call(rt, "run", true)[0] as RawResult[], ruleset, true),
      };
    }
    return finalizeReport(report, outcomes, verify, now);
  } finally {
    sandbox.close();
  }
}

/** The delivered ruleset, or the baked-in one (with the reason) when it cannot be loaded. */
export async function runWithFallback(
  delivered: () => Promise<Ruleset>,
  env: RepairEnv,
  actions: AgentActions | undefined,
  opts: { dryRun: boolean; deferActions?: boolean; now?: () => Date },
): Promise<RepairReport> {
  let ruleset: Ruleset;
  try {
    ruleset = await delivered();
    await checkRuleset(ruleset, env);
  } catch (e) {
    const d = describeError(e);
    ruleset = bakedInRuleset(`${d.code}: ${d.message}`);
  }
  return runRepairKit(ruleset, env, actions, opts);
}
