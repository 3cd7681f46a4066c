/**
 * `agent ips status [--json]`: the running agent's IPS state, counters,
 * latency and per-signature hits (GET /v1/ips/stats). With no agent running
 * it reports what the next start will do, from the effective config
 * (agent.json, policy, the `ips` flag) and state.json.
 */
import { defineCommand } from "citty";
import { agentArgs, connectIfRunning, loadAgentConfig } from "../../core/cli/agent/session.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { effectiveFromDisk } from "../../core/effective/service.ts";
import { HealthBoard } from "../../core/health/reasons.ts";
import { log } from "../../core/log.ts";
import type { EngineStats } from "./engine.ts";
import type { IpsStatus } from "./service.ts";
import { loadIpsState } from "./state.ts";

export function renderIpsStatus(s: IpsStatus & { engine?: EngineStats | null }): string {
  const c = s.counters;
  const lines = [
    `IPS: ${s.enabled ? "ON" : "off"} (${s.phase}) — ${s.reason}`,
    `mode ${s.mode}, queue ${s.queue}, rules backend ${s.backend ?? "-"}, EPIPS_data ${s.contentVersion ?? "-"}`,
    `packets ${c.packets}: inspected ${c.inspected}, accepted ${c.accepted}, dropped ${c.dropped}, uninspected ${c.uninspected}`,
    `timeouts ${c.timeouts}, errors ${c.errors}, malformed ${c.malformed}, overruns ${c.overruns}, detections ${c.detections}`,
    `verdict latency p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms (${s.latencyMs.samples} samples)`,
  ];
  if (s.engine?.signatures?.length) {
    lines.push("top signatures:");
    for (const g of s.engine.signatures.slice(0, 10))
      lines.push(`  sid ${g.sid} rev ${g.rev} ${g.action} ${g.hits} hits  ${g.msg}`);
  }
  return lines.join("\n");
}

export default defineCommand({
  meta: { name: "status", description: "Show IPS state, counters, verdict latency and per-signature hits" },
  args: agentArgs,
  async run({ args }) {
    const config = loadAgentConfig(args);
    const client = await connectIfRunning(config.stateDir);
    if (client) {
      const s = (await client.request("GET", "/v1/ips/stats")) as IpsStatus & { engine: EngineStats | null };
      if (args.json) printJson(s);
      else printText(renderIpsStatus(s));
      return;
    }
    const { state, problem } = loadIpsState(config.stateDir);
    const effective = effectiveFromDisk(config, log, new HealthBoard());
    const ips = effective.current().ips;
    const flagAllows = effective.allows("ips");
    const withheld = effective.gates().find((g) => g.flag === "ips")?.withheld ?? false;
    const offline = {
      running: false,
      configEnabled: ips.enabled,
      withheldByFlag: withheld || (!flagAllows && state.admin === "enabled"),
      admin: state.admin,
      safety: state.safety,
      mode: ips.mode,
      queue: ips.queue,
      ...(problem ? { problem } : {}),
    };
    if (args.json) printJson(offline);
    else {
      const wanted = (state.admin ? state.admin === "enabled" : ips.enabled) && flagAllows;
      printText(
        `agent not running; at start the IPS will be ${wanted && !state.safety ? "on (if EPIPS_data is installed and no override matches)" : "off"}` +
          (offline.withheldByFlag ? " — withheld by flag ips" : "") +
          (state.safety ? ` — disabled by safety: ${state.safety.reason} (${state.safety.code})` : ""),
      );
    }
  },
});
