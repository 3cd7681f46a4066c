/**
 * Where a repair run starts:
 *
 *   runRepair(agent)      the supervisor, after each update cycle (the
 *                         runtime calls it once `update()` has resolved)
 *   repairOnline(client)  `agent run-repair` while an agent is running
 *   repairOffline(...)    `agent run-repair` with no agent running — also
 *                         when the state is too broken for one to start
 *
 * Each uses the delivered RepairKit when it can and the baked-in
 * last-resort rules when it cannot, and reports which ran and why.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentApi, AgentStatus } from "../../core/agent/api.ts";
import type { AgentConfig } from "../../core/config.ts";
import { verifySignature } from "../../core/crypto/verify.ts";
import { describeError, HandlerError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { metrics } from "../../core/metrics.ts";
import { statePaths } from "../../core/state-paths.ts";
import { ContentStore } from "../../core/store/store.ts";
import { openRulesPackage } from "../_shared/lua/format.ts";
import { groupWorkDir, loadKeyring } from "../_shared/lua/keys.ts";
import { actionsFor } from "./actions.ts";
import type { Ruleset } from "./engine.ts";
import {
  type AgentActions,
  factsFromConfig,
  type RepairFacts,
  type RepairMode,
  writeFacts,
} from "./facts.ts";
import { executeActions, finalizeReport, type RepairReport } from "./report.ts";
import { inspectTrust, localTrust, type TrustLoader } from "./trust.ts";

/**
 * The Lua engine and the environment its rules see, for rules that run in this process: the
 * baked-in fallback, and every run of the offline CLI. The supervisor's repair pass runs its rules
 * in the repair host and never loads them.
 */
const luaEngine = async () => {
  const [engine, { RepairEnv }] = await Promise.all([import("./engine.ts"), import("./env.ts")]);
  return { ...engine, RepairEnv };
};

const runsTotal = metrics.counter("outpost_repair_runs_total", "RepairKit runs, by mode, ruleset and result");
const checksTotal = metrics.counter("outpost_repair_checks_total", "RepairKit check outcomes, by status");

/** What a caller needs from an agent: a running one (Agent, ControlClient). */
export type RepairTarget = Pick<AgentApi, "update" | "rollback" | "call"> & {
  status(): AgentStatus | Promise<AgentStatus>;
};

function record(report: RepairReport): void {
  const result = report.summary.failed > 0 ? "failed" : "ok";
  runsTotal.inc({ mode: report.mode, ruleset: report.ruleset.source, result });
  for (const c of report.checks) checksTotal.inc({ status: c.status });
}

/** Runs RepairKit in its host; falls back to the baked-in rules here when it is not loaded. */
/** Trust verification for a state dir, done here where the CMS verifier is loaded. */
const trustInspector =
  (facts: RepairFacts, loadTrust: TrustLoader = localTrust) =>
  () =>
    inspectTrust(facts.trustPath, statePaths(facts.stateDir).indexCache, new Date(), loadTrust);

/** The facts the repair host gets, with the trust store already verified. */
async function factsFor(
  config: AgentConfig,
  configFile: string | null,
  loadTrust: TrustLoader = localTrust,
): Promise<RepairFacts> {
  const facts = factsFromConfig(config, configFile);
  return { ...facts, trust: await trustInspector(facts, loadTrust)() };
}

async function viaHandler(
  target: RepairTarget,
  facts: RepairFacts,
  mode: RepairMode,
  dryRun: boolean,
  loadTrust: TrustLoader = localTrust,
): Promise<RepairReport> {
  const actions = actionsFor(target);
  let first: RepairReport;
  try {
    first = (await target.call("RepairKit", "run", { dryRun, deferActions: true, mode })) as RepairReport;
  } catch (e) {
    const d = describeError(e);
    // Not installed, not loaded, or its host is down: nothing delivered can run, the baked-in rules can.
    const { bakedInRuleset, runRepairKit, RepairEnv } = await luaEngine();
    const env = new RepairEnv(facts, mode, { inspectTrust: trustInspector(facts, loadTrust) });
    return runRepairKit(bakedInRuleset(`RepairKit ${d.code}: ${d.message}`), env, actions, { dryRun });
  }
  if (!first.pending?.length) return first;
  const outcomes = await executeActions(first.pending, actions);
  let verify: RepairReport | null = null;
  try {
    verify = (await target.call("RepairKit", "run", { dryRun: true, mode })) as RepairReport;
  } catch {
    verify = null;
  }
  return finalizeReport(first, outcomes, verify);
}

/**
 * The update cycle's repair pass. Call it after `agent.update()` has
 * resolved (not from inside the cycle: a repair may ask for another
 * update, which queues behind the running one).
 */
export async function runRepair(
  agent: RepairTarget & {
    config: AgentConfig;
    events: { emit(type: string, f?: Record<string, unknown>): unknown };
    /** The agent's own kind of trust store (the supervisor's checks run in its crypto worker). */
    loadTrust?: TrustLoader;
  },
  opts: { dryRun?: boolean; configFile?: string | null } = {},
): Promise<RepairReport> {
  const loadTrust = agent.loadTrust?.bind(agent) ?? localTrust;
  const facts = await factsFor(agent.config, opts.configFile ?? null, loadTrust);
  writeFacts(groupWorkDir(agent.config.stateDir, "repair"), facts);
  const report = await viaHandler(agent, facts, "in-cycle", opts.dryRun ?? false, loadTrust);
  record(report);
  agent.events.emit("repair-finished", {
    mode: report.mode,
    dryRun: report.dryRun,
    ruleset: report.ruleset,
    summary: report.summary,
  });
  if (report.summary.failed > 0) {
    log.child({ component: "repair" }).warn("repair run left problems", {
      failed: report.checks.filter((c) => c.status === "failed").map((c) => c.id),
    });
  }
  return report;
}

/** `agent run-repair` against a running agent (facts come from the same config the agent uses). */
export async function repairOnline(
  client: RepairTarget,
  config: AgentConfig,
  opts: { dryRun: boolean; configFile: string | null },
): Promise<RepairReport> {
  const facts = await factsFor(config, opts.configFile);
  writeFacts(groupWorkDir(config.stateDir, "repair"), facts);
  const report = await viaHandler(client, facts, "online", opts.dryRun);
  record(report);
  return report;
}

/**
 * The delivered RepairKit read straight from the content store, for when
 * no agent runs: its manifest signature is checked again (as of its
 * signing time) and every file against the manifest before decryption.
 */
export async function deliveredFromStore(stateDir: string, trustPath: string): Promise<Ruleset> {
  const store = new ContentStore(stateDir);
  const rec = store.installed("RepairKit");
  if (!rec) throw new HandlerError("HND_REPAIR_NOT_INSTALLED", "no RepairKit content is installed");
  const dir = join(store.root, "RepairKit", rec.dir);
  const manifestFile = join(dir, "manifest.json");
  const manifestBytes = new Uint8Array(readFileSync(manifestFile));
  const sigFile = join(dir, "manifest.p7s");
  if (!existsSync(sigFile))
    throw new HandlerError("HND_REPAIR_UNSIGNED", `${sigFile}: missing`, { file: sigFile });
  const trust = await localTrust(trustPath);
  await verifySignature(manifestBytes, new Uint8Array(readFileSync(sigFile)), trust, {
    now: new Date(rec.signingTime),
    file: manifestFile,
  });
  const { manifest, rules } = openRulesPackage(
    store.view(rec),
    loadKeyring(groupWorkDir(stateDir, "repair")),
  );
  return { source: "delivered", version: rec.version, rules, limits: manifest.limits };
}

/**
 * `agent run-repair` with no agent running. Repairs come first; agent
 * actions the fixes asked for run afterwards through `startAgent` (an
 * in-process agent, which can only start once the state is sound).
 */
export async function repairOffline(
  config: AgentConfig,
  opts: { dryRun: boolean; configFile: string | null; actions?: AgentActions },
): Promise<RepairReport> {
  const facts = factsFromConfig(config, opts.configFile);
  const { runWithFallback, RepairEnv } = await luaEngine();
  const env = new RepairEnv(facts, "offline", { inspectTrust: trustInspector(facts) });
  const report = await runWithFallback(
    () => deliveredFromStore(config.stateDir, config.update.trust),
    env,
    opts.actions,
    {
      dryRun: opts.dryRun,
    },
  );
  record(report);
  return report;
}
