/** Human-readable views of the AgentApi shapes (the --json output is the shapes themselves). */
import type {
  AgentStatus,
  ContentInfo,
  HostStatus,
  RejectionRecord,
  UpdateCycleReport,
} from "../../agent/api.ts";
import type { PolicyStatus } from "../../agent/policy.ts";
import { renderSensors } from "../../sensors/render.ts";
import { renderFields, renderTable } from "../output.ts";

export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

export function renderContentTable(items: ContentInfo[]): string {
  if (items.length === 0) return "no content handlers registered";
  return renderTable(
    ["TYPE", "VERSION", "SIGNED", "INSTALLED", "LKG", "HANDLER", "BAD"],
    items.map((c) => [
      c.type,
      c.version,
      c.signingTime,
      c.installedAt,
      c.lkgVersion,
      c.handlerState,
      c.badVersions.length ? c.badVersions.join(",") : null,
    ]),
  );
}

function renderErrors(errors: RejectionRecord[]): string {
  return renderTable(
    ["AT", "TYPE", "CODE", "FILE", "REASON"],
    errors.map((e) => [e.at, e.type, e.code, e.file, e.reason]),
  );
}

function renderPolicy(p: PolicyStatus): string {
  const pins = Object.entries(p.pins).map(([t, v]) => `${t}=v${v}`);
  const head = renderFields([
    [
      "policy",
      `cadence ${p.cadence}, polls ${p.group}${p.group === p.assignedGroup ? "" : ` (assigned ${p.assignedGroup})`}`,
    ],
    ["pins", pins.length ? pins.join(", ") : null],
  ]);
  if (p.content.length === 0) return head;
  return `${head}\n${renderTable(
    ["TYPE", "OFFERED", "N-1", "TARGET", "HELD"],
    p.content.map((c) => [c.type, c.offered, c.previous, c.target, c.held]),
  )}`;
}

const mb = (bytes: number) => (bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0);

/** One row per host process: what runs where, under whom, how healthy; the sandbox details are in --json. */
export function renderHostsTable(hosts: HostStatus[]): string {
  return renderTable(
    ["HOST", "STATE", "PID", "USER", "HANDLERS", "RESTARTS", "RSS/LIMIT MB", "LAST CRASH"],
    hosts.map((h) => [
      h.group,
      h.state,
      h.pid,
      h.user,
      h.handlers.join(","),
      h.restarts,
      h.usage ? `${mb(h.usage.rssBytes)}/${mb(h.limits.memoryBytes)}` : null,
      h.lastCrash
        ? `${h.lastCrash.at} ${h.lastCrash.reason}${h.lastCrash.signal ? ` (${h.lastCrash.signal})` : ""} during ${h.lastCrash.during}`
        : null,
    ]),
  );
}

export function renderStatus(s: AgentStatus, opts: { offline?: boolean } = {}): string {
  const u = s.update;
  const parts = [
    renderFields([
      [
        "agent",
        `${s.agent.version} (${s.agent.commit})${opts.offline ? ", not running (offline view)" : `, pid ${s.agent.pid}, up ${formatDuration(s.agent.uptimeSeconds)}`}`,
      ],
      ["health", s.health.toUpperCase()],
      ...s.healthReasons.map((r): [string, string] => ["", `- ${r}`]),
      // Information-level reasons (self-help findings) do not change health but are shown.
      ...(s.healthDetails ?? [])
        .filter((r) => r.level === "info")
        .map((r): [string, string] => ["info", r.message]),
      // Generated exclusions whose rules are held inert (docs/exclusions.md); `agent exclusions` says why.
      ...Object.entries(s.exclusions?.held ?? {}).map(([producer, code]): [string, string] => [
        "rules held",
        `${producer}: ${code} (nothing of it runs or is excluded; see agent exclusions)`,
      ]),
      ["repo", `${u.repo} (group ${u.group})`],
      ["last attempt", u.lastAttempt],
      ["last success", u.lastSuccess],
      ["next run", u.nextRun],
      ["index serial", u.lastSerial],
      ["failures", u.consecutiveFailures],
    ]),
    "",
    renderContentTable(s.content),
  ];
  if (s.hosts && s.hosts.length > 0) parts.push("", renderHostsTable(s.hosts));
  if (s.policy) parts.push("", renderPolicy(s.policy));
  if (s.sensors) parts.push("", renderFields(renderSensors(s.sensors)));
  if (s.lastErrors.length > 0) parts.push("", "last errors", renderErrors(s.lastErrors.slice(0, 10)));
  return parts.join("\n");
}

export function renderReport(r: UpdateCycleReport): string {
  const lines = [
    renderFields([
      ["result", r.ok ? "ok" : "FAILED"],
      ["repo", `${r.repo} (group ${r.group})`],
      ["index", r.serial === null ? r.index : `${r.index} (serial ${r.serial})`],
      ["took", `${Math.max(0, Date.parse(r.finishedAt) - Date.parse(r.startedAt))} ms`],
    ]),
  ];
  if (r.installed.length > 0) {
    lines.push(
      "",
      renderTable(
        ["INSTALLED", "VERSION", "PREVIOUS"],
        r.installed.map((i) => [i.type, i.version, i.previousVersion]),
      ),
    );
  }
  if (r.unchanged.length > 0) lines.push("", `unchanged: ${r.unchanged.join(", ")}`);
  if (r.rejected.length > 0) lines.push("", "rejected", renderErrors(r.rejected));
  return lines.join("\n");
}
