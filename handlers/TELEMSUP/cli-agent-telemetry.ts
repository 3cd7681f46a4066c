/**
 * `agent telemetry [--json]`: what the telemetry service holds on disk —
 * whether it is on, where it sends (the last target that passed the
 * allow-list), when it last reported, and the reports still queued for
 * delivery. Read from STATE/telemetry, so it answers the same whether the
 * agent runs or not, and it changes nothing. `--json` prints
 * `{ enabled, allowedServers, target, lastReportAt, queued: { reports, bytes }, rejected }`
 * (docs/cli.md).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { agentArgs, loadAgentConfig } from "../../core/cli/agent/session.ts";
import { printJson, printText } from "../../core/cli/output.ts";

/** Queue body file names: <order>_<generation>_<first>_<last>.ndjson[.gz] (plugins/sinks/results-http.ts). */
const BODY = /^\d{12}_[A-Za-z0-9-]{1,64}_(\d{16})_(\d{16})\.ndjson(\.gz)?$/;

export interface TelemetryView {
  enabled: boolean;
  allowedServers: string[];
  target: { url: string; method: string; intervalSeconds: number } | null;
  lastReportAt: string | null;
  queued: { reports: number; bytes: number };
  rejected: number;
}

export function telemetryView(
  stateDir: string,
  config: { enabled: boolean; allowedServers: string[] },
): TelemetryView {
  const dir = join(stateDir, "telemetry");
  let state: { lastReportAt?: string | null; target?: TelemetryView["target"] } = {};
  try {
    state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8"));
  } catch {
    // never reported (or telemetry never enabled): nothing to show
  }
  const queueDir = join(dir, "queue");
  let reports = 0;
  let bytes = 0;
  if (existsSync(queueDir)) {
    for (const name of readdirSync(queueDir)) {
      const m = BODY.exec(name);
      if (!m) continue;
      reports += Number(m[2]) - Number(m[1]) + 1;
      bytes += statSync(join(queueDir, name)).size;
    }
  }
  const rejectedDir = join(queueDir, "rejected");
  return {
    enabled: config.enabled,
    allowedServers: config.allowedServers,
    target: state.target
      ? { url: state.target.url, method: state.target.method, intervalSeconds: state.target.intervalSeconds }
      : null,
    lastReportAt: state.lastReportAt ?? null,
    queued: { reports, bytes },
    rejected: existsSync(rejectedDir) ? readdirSync(rejectedDir).filter((n) => BODY.test(n)).length : 0,
  };
}

export default defineCommand({
  meta: {
    name: "telemetry",
    description: "Telemetry state: on or off, pinned servers, current target, last report, reports queued",
  },
  args: agentArgs,
  run({ args }) {
    const config = loadAgentConfig(args);
    const v = telemetryView(config.stateDir, config.telemetry);
    if (args.json) {
      printJson(v);
      return v;
    }
    printText(
      [
        `telemetry     ${v.enabled ? "on" : "off (telemetry.enabled is false)"}`,
        `allowed       ${v.allowedServers.join(", ") || "(none)"}`,
        `target        ${v.target ? `${v.target.method} ${v.target.url} every ${v.target.intervalSeconds} s` : "(none)"}`,
        `last report   ${v.lastReportAt ?? "never"}`,
        `queued        ${v.queued.reports} report(s), ${v.queued.bytes} bytes${v.rejected ? `; ${v.rejected} rejected by the receiver` : ""}`,
      ].join("\n"),
    );
    return v;
  },
});
