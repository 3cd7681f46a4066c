/**
 * RepairKit: signed and encrypted Lua rules that check and fix the agent's
 * own installation (permissions and ownership, corrupt or missing content,
 * a stuck lock, a broken state file, a disabled update loop). Runs as root
 * in the `repair` host group, once per update cycle (runRepair) and on
 * demand (`agent run-repair`). If the delivered rules cannot be used, the
 * last-resort ruleset compiled into the agent runs instead.
 *
 * API (`call`):
 *   run {dryRun?, deferActions?, mode?} → RepairReport
 *   checks                             → the loaded checks
 */
import { dirname } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import type { Capabilities } from "../../core/handler/contract.ts";
import { defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { openRulesPackage, validateRulesPackage } from "../_shared/lua/format.ts";
import { loadKeyring } from "../_shared/lua/keys.ts";
import { actionsFromCaps } from "./actions.ts";
import { checkRuleset, type Ruleset, runWithFallback } from "./engine.ts";
import { RepairEnv } from "./env.ts";
import { type RepairFacts, type RepairMode, readFacts } from "./facts.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

interface RepairLive {
  ruleset: Ruleset;
  caps: Capabilities;
  checks: { id: string; description: string }[];
}

const RunArgsSchema = lazySchema(() =>
  z.strictObject({
    dryRun: z._default(z.boolean(), false),
    /** Leave requested agent actions to the caller (who is not bound by this call's timeout). */
    deferActions: z._default(z.boolean(), false),
    mode: z._default(z.enum(["in-cycle", "online"]), "online"),
  }),
);

/**
 * The installation as the supervisor described it (facts.json in this
 * group's work directory). The state dir is always the one this host
 * serves: `<stateDir>/hosts/repair`.
 */
function factsFor(caps: Capabilities): RepairFacts {
  const stateDir = dirname(dirname(caps.workDir));
  const facts = readFacts(caps.workDir);
  if (facts) return { ...facts, stateDir };
  return {
    schema: 1,
    stateDir,
    trustPath: "/etc/outpost/root.pem",
    configFile: null,
    update: { enabled: true, intervalSeconds: 3600, maxBackoffSeconds: 6 * 3600, group: "", repo: "" },
    agentUid: process.getuid?.() ?? 0,
    agentGid: process.getgid?.() ?? 0,
    writtenAt: new Date(0).toISOString(),
  };
}

export const repairKitHandler = defineParsedHandler<RepairLive>({
  manifest: parsedManifest(),

  validate(view) {
    validateRulesPackage(view);
  },

  async load(view, caps) {
    const { manifest, rules } = openRulesPackage(view, loadKeyring(caps.workDir));
    const ruleset: Ruleset = { source: "delivered", version: view.version, rules, limits: manifest.limits };
    const checks = await checkRuleset(ruleset, new RepairEnv(factsFor(caps), "online"));
    return { ruleset, caps, checks };
  },

  status: (live) => ({ checks: live.checks.length }),

  async call(live, method, args) {
    if (method === "checks") return { version: live.ruleset.version, checks: live.checks };
    if (method !== "run")
      throw new HandlerError("HND_NO_METHOD", `RepairKit has no method ${method} (try: run, checks)`);
    const parsed = RunArgsSchema.safeParse(args ?? {});
    if (!parsed.success)
      throw new HandlerError("HND_BAD_ARGS", `RepairKit run: ${parsed.error.issues[0]?.message}`);
    const { dryRun, deferActions, mode } = parsed.data;
    const env = new RepairEnv(factsFor(live.caps), mode as RepairMode);
    const actions = live.caps.agent ? actionsFromCaps(live.caps.agent) : undefined;
    const report = await runWithFallback(async () => live.ruleset, env, actions, { dryRun, deferActions });
    // With deferActions the caller finishes the run (actions, verification) and reports it.
    if (!deferActions) {
      live.caps.events.emit("repair-finished", {
        mode,
        dryRun,
        ruleset: report.ruleset,
        summary: report.summary,
      });
    }
    return report;
  },
});
