/**
 * osquery's result log format (osquery core/query.cpp) and differential
 * state. A scheduled query's rows are compared with its previous run's:
 * the first run (or a new epoch, or changed SQL) reports every row as
 * `added` with counter 0; later runs report only what changed and bump the
 * counter; an unchanged result logs nothing. Snapshot queries log all rows
 * every time. Lines are in osquery's default event format (one line per
 * row, `action` + `columns`) or its batch format (`diffResults`), with the
 * legacy fields name, hostIdentifier, calendarTime, unixTime, epoch,
 * counter and numerics — all values strings, numerics false, as osqueryd
 * logs by default.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ResultRow } from "../../plugins/query/engine.ts";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** asctime(3) in UTC plus " UTC", osquery's calendarTime: "Mon Aug  5 12:10:57 2024 UTC". */
export function calendarTime(d: Date): string {
  const p2 = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, " ")} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${d.getUTCFullYear()} UTC`;
}

export interface LogContext {
  name: string;
  hostIdentifier: string;
  at: Date;
  epoch: number;
  counter: number;
}

function legacy(c: LogContext) {
  return {
    name: c.name,
    hostIdentifier: c.hostIdentifier,
    calendarTime: calendarTime(c.at),
    unixTime: Math.floor(c.at.getTime() / 1000),
    epoch: c.epoch,
    counter: c.counter,
    numerics: false,
  };
}

export function snapshotLine(c: LogContext, rows: ResultRow[]): string {
  return JSON.stringify({ snapshot: rows, action: "snapshot", ...legacy(c) });
}

export function eventLines(c: LogContext, added: ResultRow[], removed: ResultRow[]): string[] {
  const base = legacy(c);
  return [
    ...removed.map((columns) => JSON.stringify({ ...base, columns, action: "removed" })),
    ...added.map((columns) => JSON.stringify({ ...base, columns, action: "added" })),
  ];
}

export function batchLine(c: LogContext, added: ResultRow[], removed: ResultRow[]): string {
  return JSON.stringify({ diffResults: { removed, added }, ...legacy(c) });
}

/** Multiset difference, as osquery diffs QueryDataSet. */
export function diffRows(
  previous: readonly string[],
  current: readonly string[],
): { added: string[]; removed: string[] } {
  const counts = new Map<string, number>();
  for (const r of previous) counts.set(r, (counts.get(r) ?? 0) + 1);
  const added: string[] = [];
  for (const r of current) {
    const n = counts.get(r) ?? 0;
    if (n > 0) counts.set(r, n - 1);
    else added.push(r);
  }
  const removed: string[] = [];
  for (const [r, n] of counts) for (let i = 0; i < n; i++) removed.push(r);
  return { added, removed };
}

interface QueryState {
  name: string;
  sql: string;
  epoch: number;
  counter: number;
  rows: string[];
}

/** Previous results per scheduled query (osquery keeps them in its RocksDB). */
export class DiffStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private path(name: string): string {
    return join(this.dir, `${new Bun.CryptoHasher("sha256").update(name).digest("hex").slice(0, 32)}.json`);
  }

  load(name: string): QueryState | undefined {
    const p = this.path(name);
    if (!existsSync(p)) return undefined;
    try {
      const s = JSON.parse(readFileSync(p, "utf8")) as QueryState;
      return s.name === name && Array.isArray(s.rows) ? s : undefined;
    } catch {
      // A torn or foreign file: start the query over as a first run.
      return undefined;
    }
  }

  /**
   * Atomic (rename) but not fsynced: it only has to survive the query host
   * dying. After a power loss an older state means one differential is
   * logged again — a repeat, never a loss, because the lines themselves were
   * fsynced to the outbox first.
   */
  save(state: QueryState): void {
    const p = this.path(state.name);
    const tmp = `${p}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, p);
  }

  forget(name: string): void {
    rmSync(this.path(name), { force: true });
  }
}

export interface DiffOutcome {
  lines: string[];
  added: number;
  removed: number;
  counter: number;
  /** State to persist once the lines are durable (undefined: nothing changed). */
  next?: QueryState;
}

/**
 * Turns one run's rows into log lines. The caller appends the lines to the
 * outbox first and then saves `next`, so a crash in between can repeat a
 * differential but never lose one.
 */
export function processResults(
  store: DiffStore,
  q: { logName: string; sql: string; snapshot: boolean; removed: boolean },
  rows: ResultRow[],
  opts: { hostIdentifier: string; at: Date; epoch: number; eventFormat: boolean },
): DiffOutcome {
  const ctxBase = { name: q.logName, hostIdentifier: opts.hostIdentifier, at: opts.at, epoch: opts.epoch };
  if (q.snapshot) {
    // osqueryd logs snapshots "without a differential or state": counter stays 0.
    return {
      lines: [snapshotLine({ ...ctxBase, counter: 0 }, rows)],
      added: rows.length,
      removed: 0,
      counter: 0,
    };
  }
  const prev = store.load(q.logName);
  const current = rows.map((r) => JSON.stringify(r));
  const fresh = !prev || prev.epoch !== opts.epoch || prev.sql !== q.sql;
  const { added, removed } = fresh ? { added: current, removed: [] } : diffRows(prev.rows, current);
  if (!fresh && added.length === 0 && removed.length === 0)
    return { lines: [], added: 0, removed: 0, counter: prev.counter };
  const counter = fresh ? 0 : prev.counter + 1;
  const addedRows = added.map((r) => JSON.parse(r) as ResultRow);
  // `removed: false` queries report additions only (osquery's "removed" option).
  const removedRows = q.removed ? removed.map((r) => JSON.parse(r) as ResultRow) : [];
  const ctx = { ...ctxBase, counter };
  let lines: string[];
  if (addedRows.length === 0 && removedRows.length === 0) lines = [];
  else if (opts.eventFormat) lines = eventLines(ctx, addedRows, removedRows);
  else lines = [batchLine(ctx, addedRows, removedRows)];
  return {
    lines,
    added: addedRows.length,
    removed: removedRows.length,
    counter,
    next: { name: q.logName, sql: q.sql, epoch: opts.epoch, counter, rows: current },
  };
}
