/** What the `contentctl release` commands share: --config, --db, opening the engine, the status rendering. */
import type { ArgsDef } from "citty";
import { renderFields, renderTable } from "../../core/cli/output.ts";
import type { ReleaseAlerter } from "../alerts.ts";
import { loadReleaseConfig, type ReleaseConfig } from "../config.ts";
import { ReleaseEngine } from "../engine.ts";
import { openReleaseDb } from "../open-db.ts";
import type { ReleaseStatusView, ReleaseView } from "../views.ts";

export const releaseArgs = {
  config: {
    type: "string",
    default: "release.json",
    valueHint: "FILE",
    description: "Release config (groups, gates, health, fleet tenants)",
  },
  db: {
    type: "string",
    valueHint: "URL",
    description:
      "Fleet database, the one `contentctl serve --release --db` uses: postgres://user@host:port/db (default: STATE/fleet.db, SQLite)",
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

/**
 * The engine on the release database. `mode: "read"` (status) opens only a
 * database that exists and has the fleet schema: no state is an error
 * (REL_STATE_MISSING / REL_DB_UNREACHABLE, exit 3), never "no releases".
 */
export async function releaseEngine(
  args: { db?: string },
  config: ReleaseConfig,
  opts: { mode?: "read" | "write"; alerter?: ReleaseAlerter } = {},
): Promise<ReleaseEngine> {
  const db = await openReleaseDb({
    url: args.db,
    stateDir: config.paths.stateDir,
    mode: opts.mode,
    maxAgents: config.fleet.maxAgents,
  });
  return new ReleaseEngine({ config, db, alerter: opts.alerter });
}

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
