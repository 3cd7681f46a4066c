/**
 * Release state in the database: releases, their groups' progress, the log
 * and health samples, as rows. The engine keeps working on the same
 * `ReleaseState` object (load → change → persist after every step); `save`
 * writes only the releases that changed since the last load or save, each
 * in one transaction, and appends log and health rows instead of
 * rewriting them. Everything loaded is checked with the state's zod schema:
 * rows that do not make a valid state stop the engine (REL_STATE_CORRUPT)
 * rather than let it guess which groups run what.
 */
import { StoreError } from "../../core/errors.ts";
import { type Driver, insertRows, num, type Param, type Queryable, type Row } from "./driver.ts";
import { type Release, type ReleaseState, ReleaseStateSchema } from "./schema.ts";

export class DbReleaseStore {
  /** Last saved/loaded form of each release, to write only what changed. */
  private saved = new Map<string, Release>();

  constructor(private readonly db: Driver) {}

  async load(): Promise<ReleaseState> {
    const [rels, groups, logs, health] = await Promise.all([
      this.db.all("SELECT * FROM releases ORDER BY ord"),
      this.db.all("SELECT * FROM release_groups ORDER BY release_id, idx"),
      this.db.all("SELECT * FROM release_log ORDER BY release_id, seq"),
      this.db.all("SELECT * FROM release_health ORDER BY release_id, seq"),
    ]);
    const by = (rows: Row[]) => {
      const m = new Map<string, Row[]>();
      for (const r of rows) {
        const k = String(r.release_id);
        m.set(k, [...(m.get(k) ?? []), r]);
      }
      return m;
    };
    const g = by(groups);
    const l = by(logs);
    const h = by(health);
    let raw: unknown;
    try {
      raw = {
        schema: 1,
        releases: rels.map((r) => {
          const id = String(r.id);
          return {
            id,
            type: r.type,
            version: num(r.version),
            package: JSON.parse(String(r.package)),
            status: r.status,
            startedAt: r.started_at,
            finishedAt: r.finished_at ?? null,
            groups: (g.get(id) ?? []).map((x) => ({
              name: x.name,
              ...(x.before_entry === null ? {} : { before: JSON.parse(String(x.before_entry)) }),
              publishedAt: x.published_at ?? null,
              revertedAt: x.reverted_at ?? null,
            })),
            abort: r.abort === null ? null : JSON.parse(String(r.abort)),
            ...(r.models === null || r.models === undefined ? {} : { models: JSON.parse(String(r.models)) }),
            log: (l.get(id) ?? []).map((x) => ({
              at: x.at,
              event: x.event,
              ...(x.grp === null ? {} : { group: x.grp }),
              detail: x.detail,
            })),
            health: (h.get(id) ?? []).map((x) => ({
              at: x.at,
              group: x.grp,
              agents: num(x.agents),
              exposed: num(x.exposed),
              affected: num(x.affected),
            })),
          };
        }),
      };
    } catch (e) {
      throw corrupt(this.db.where, e);
    }
    const parsed = ReleaseStateSchema.safeParse(raw);
    if (!parsed.success) throw corrupt(this.db.where, parsed.error);
    this.saved = new Map(parsed.data.releases.map((r) => [r.id, structuredClone(r)]));
    return parsed.data;
  }

  /** Writes every release that changed; each release is one transaction. */
  async save(state: ReleaseState): Promise<void> {
    for (const [ord, r] of state.releases.entries()) {
      const before = this.saved.get(r.id);
      if (before && sameJson(before, r)) continue;
      await this.db.tx((q) => writeRelease(q, ord, r, before));
      this.saved.set(r.id, structuredClone(r));
    }
  }
}

async function writeRelease(
  q: Queryable,
  ord: number,
  r: Release,
  before: Release | undefined,
): Promise<void> {
  const row: Param[] = [
    r.id,
    ord,
    r.type,
    r.version,
    r.status,
    r.startedAt,
    r.finishedAt,
    JSON.stringify(r.package),
    r.abort ? JSON.stringify(r.abort) : null,
    r.models ? JSON.stringify(r.models) : null,
  ];
  await q.run(
    `INSERT INTO releases (id, ord, type, version, status, started_at, finished_at, package, abort, models)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (id) DO UPDATE SET ord = excluded.ord, type = excluded.type, version = excluded.version,
       status = excluded.status, started_at = excluded.started_at, finished_at = excluded.finished_at,
       package = excluded.package, abort = excluded.abort, models = excluded.models`,
    row,
  );
  if (!before || !sameJson(before.groups, r.groups)) {
    await q.run("DELETE FROM release_groups WHERE release_id = $1", [r.id]);
    await insertRows(
      q,
      "INSERT INTO release_groups (release_id, idx, name, before_entry, published_at, reverted_at) VALUES",
      r.groups.map((g, i) => [
        r.id,
        i,
        g.name,
        g.before === undefined ? null : JSON.stringify(g.before),
        g.publishedAt,
        g.revertedAt,
      ]),
      "",
    );
  }
  await syncList(
    q,
    "release_log",
    r.id,
    before?.log,
    r.log,
    (e) => [e.at, e.event, e.group ?? null, e.detail],
    ["at", "event", "grp", "detail"],
  );
  await syncList(
    q,
    "release_health",
    r.id,
    before?.health,
    r.health,
    (s) => [s.at, s.group, s.agents, s.exposed, s.affected],
    ["at", "grp", "agents", "exposed", "affected"],
  );
}

/**
 * Appends what was added at the end; rewrites the list when older entries
 * changed (the capped log dropping its oldest, health samples thinned).
 */
async function syncList<T>(
  q: Queryable,
  table: string,
  id: string,
  old: T[] | undefined,
  now: T[],
  cols: (x: T) => Param[],
  names: string[],
): Promise<void> {
  const prefix = old && old.length <= now.length && sameJson(old, now.slice(0, old.length));
  const from = prefix ? old.length : 0;
  if (prefix && from === now.length) return;
  if (!prefix) await q.run(`DELETE FROM ${table} WHERE release_id = $1`, [id]);
  await insertRows(
    q,
    `INSERT INTO ${table} (release_id, seq, ${names.join(", ")}) VALUES`,
    now.slice(from).map((x, i) => [id, from + i, ...cols(x)]),
    "",
  );
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function corrupt(where: string, e: unknown): StoreError {
  return new StoreError("REL_STATE_CORRUPT", `${where}: unreadable release state (${(e as Error).message})`, {
    file: where,
    cause: e,
  });
}
