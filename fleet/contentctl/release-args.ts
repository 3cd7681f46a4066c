/** What the `contentctl release` commands share: the --config argument and the status rendering. */
import type { ArgsDef } from "citty";
import { renderFields, renderTable } from "../../core/cli/output.ts";
import { loadReleaseConfig, type ReleaseConfig } from "../config.ts";
import type { ReleaseStatusView, ReleaseView } from "../views.ts";

export const releaseArgs = {
  config: {
    type: "string",
    default: "release.json",
    valueHint: "FILE",
    description: "Release config (groups, gates, health, fleet tenants)",
  },
  json: { type: "boolean", default: false, description: "Print machine-readable JSON" },
} as const satisfies ArgsDef;

/** Who is acting, for the audit trail (`release audit`). */
export const operatorArg = {
  operator: {
    type: "string",
    valueHint: "NAME",
    description: "Who is acting, recorded in the audit trail (default: cli:<login name>)",
  },
} as const satisfies ArgsDef;

export function releaseConfig(args: { config: string }): ReleaseConfig {
  return loadReleaseConfig(args.config);
}

const pct = (x: number | null) => (x === null ? null : `${(x * 100).toFixed(2)}%`);

export function renderRelease(r: ReleaseView): string {
  const head = renderFields([
    ["release", `${r.type} v${r.version} (${r.id})`],
    ["status", r.status.toUpperCase()],
    ["started", r.startedAt],
    ["finished", r.finishedAt],
    ...(r.abort
      ? ([
          ["aborted", `${r.abort.at} by ${r.abort.by}: ${r.abort.reason}`],
          ["rolled back as", `v${r.abort.revertVersion} (last good content, re-signed)`],
        ] as [string, string][])
      : []),
    ...r.next.map((n): [string, string] => ["next", n]),
  ]);
  const table = renderTable(
    ["GROUP", "PHASE", "PUBLISHED", "SOAK ENDS", "ACTIVE", "EXPOSED", "AFFECTED", "SHARE", "HEALTH"],
    r.groups.map((g) => [
      g.name,
      g.phase,
      g.publishedAt,
      g.soakEndsAt,
      g.health?.agents,
      g.health?.exposed,
      g.health?.affected,
      pct(g.share),
      g.verdict,
    ]),
  );
  return `${head}\n${table}`;
}

export function renderStatusView(v: ReleaseStatusView): string {
  const groups = renderTable(
    ["GROUP", "ENTRY", "SOAK", "ACTIVE AGENTS", "CONTENT"],
    v.groups.map((g) => [
      g.name,
      g.promote,
      `${g.soakMinutes} min`,
      g.agents,
      Object.entries(g.content)
        .map(([t, ver]) => `${t} v${ver}`)
        .join(", "),
    ]),
  );
  const releases = v.releases.length ? v.releases.map(renderRelease).join("\n\n") : "no releases";
  return `${groups}\n\n${releases}`;
}
