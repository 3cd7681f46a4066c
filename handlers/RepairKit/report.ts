/**
 * What a RepairKit run reports, and the two steps after the rules ran that
 * need no Lua: carrying out the agent actions fixes asked for, and holding
 * the repaired checks to the verification pass. Apart from engine.ts so
 * that the supervisor's repair pass, whose rules run in the repair host,
 * does not evaluate the Lua interpreter's modules (run.ts loads engine.ts
 * only for the baked-in fallback).
 */
import { describeError } from "../../core/errors.ts";
import type { Ruleset } from "./engine.ts";
import type { AgentActions, QueuedAction } from "./facts.ts";

export type CheckStatus = "ok" | "repaired" | "would-repair" | "failed" | "warning";

export interface FixReport {
  description: string;
  kind: "repair" | "maintenance";
  /** Which repair pass ran it (1 when absent). */
  pass?: number;
  status: "planned" | "done" | "failed" | "requested";
  error?: string;
  action?: string;
  arg?: string;
}

export interface CheckReport {
  id: string;
  description: string;
  file: string;
  status: CheckStatus;
  messages: { level: string; text: string }[];
  fixes: FixReport[];
  error?: string;
  ms: number;
}

export interface RepairReport {
  startedAt: string;
  /** Agent actions fixes requested, left to the caller (runs with deferActions). */
  pending?: QueuedAction[];
  finishedAt: string;
  mode: string;
  dryRun: boolean;
  stateDir: string;
  ruleset: { source: Ruleset["source"]; version: number | null; fallbackReason?: string };
  checks: CheckReport[];
  actions: ActionOutcome[];
  summary: {
    checked: number;
    ok: number;
    repaired: number;
    wouldRepair: number;
    failed: number;
    warnings: number;
  };
}

export function summarize(checks: CheckReport[]): RepairReport["summary"] {
  const count = (s: CheckStatus) => checks.filter((c) => c.status === s).length;
  return {
    checked: checks.length,
    ok: count("ok"),
    repaired: count("repaired"),
    wouldRepair: count("would-repair"),
    failed: count("failed"),
    warnings: count("warning"),
  };
}

export interface ActionOutcome {
  action: string;
  arg?: string;
  ok: boolean;
  detail: string;
}

/** Carries out queued agent actions one after the other (an update at most once). */
export async function executeActions(
  queued: readonly QueuedAction[],
  actions: AgentActions | undefined,
): Promise<ActionOutcome[]> {
  const out: ActionOutcome[] = [];
  for (const q of queued) {
    let outcome: { ok: boolean; detail: string };
    if (!actions) outcome = { ok: false, detail: "no agent to carry out the action" };
    else {
      try {
        outcome = q.action === "update" ? await actions.update() : await actions.rollback(q.arg ?? "");
      } catch (e) {
        const d = describeError(e);
        outcome = { ok: false, detail: `${d.code}: ${d.message}` };
      }
    }
    out.push({ action: q.action, ...(q.arg ? { arg: q.arg } : {}), ...outcome });
  }
  return out;
}

/**
 * Completes a run whose fixes requested agent actions: records their
 * outcomes on the fixes, then holds every repaired check to the
 * verification pass (a dry run after the repairs) — a repair that did not
 * stick is a failure.
 */
export function finalizeReport(
  report: RepairReport,
  outcomes: ActionOutcome[],
  verify: RepairReport | null,
  now: () => Date = () => new Date(),
): RepairReport {
  const checks = report.checks.map((c) => ({
    ...c,
    messages: [...c.messages],
    fixes: c.fixes.map((f) => ({ ...f })),
  }));
  for (const c of checks) {
    for (const f of c.fixes) {
      if (f.status !== "requested") continue;
      const o = outcomes.find((x) => x.action === f.action && (x.arg ?? "") === (f.arg ?? ""));
      if (!o) continue;
      f.status = o.ok ? "done" : "failed";
      if (!o.ok) f.error = o.detail;
    }
    if (c.fixes.some((f) => f.kind === "repair" && f.status === "failed")) c.status = "failed";
    if (verify && c.status === "repaired") {
      const v = verify.checks.find((x) => x.id === c.id);
      if (v && (v.status === "would-repair" || v.status === "failed")) {
        const still = v.messages.filter((m) => m.level === "problem").map((m) => m.text);
        c.messages.push({
          level: "problem",
          text: `still broken after repair: ${still.join("; ") || v.error}`,
        });
        c.status = "failed";
      }
    }
  }
  const { pending: _pending, ...rest } = report;
  return {
    ...rest,
    checks,
    actions: [...report.actions, ...outcomes],
    summary: summarize(checks),
    finishedAt: now().toISOString(),
  };
}
