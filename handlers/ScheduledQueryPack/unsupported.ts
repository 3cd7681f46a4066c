/**
 * Which scheduled queries the configured engine cannot run, known at load
 * rather than from an error on every run. The embedded engine answers from
 * its own registry (planQuery); osqueryd from `osquery_registry` (its table
 * list, fetched once per engine change), checked here by SQLite's own name
 * resolution against placeholder tables of those names.
 */
import { Database } from "bun:sqlite";
import { describeError } from "../../core/errors.ts";
import { planQuery } from "../../plugins/query/embedded.ts";
import { registerOsqueryFunctions } from "../../plugins/query/functions.ts";
import type { ScheduledQuery } from "./pack.ts";

export type UnsupportedCheck = (q: ScheduledQuery) => { code: string; message: string } | undefined;

/** An unknown table or function for the embedded engine. */
export const embeddedUnsupported: UnsupportedCheck = (q) => {
  try {
    planQuery(q.sql);
    return undefined;
  } catch (e) {
    const d = describeError(e);
    return d.code === "HND_QUERY_UNKNOWN_TABLE" || d.code === "HND_QUERY_UNKNOWN_FUNCTION"
      ? { code: d.code, message: `${d.message} (embedded engine)` }
      : undefined;
  }
};

/** More distinct tables than this in one query: stop resolving (the query is left to run and report). */
const MAX_TABLES = 64;

/** The first table `sql` uses that `tables` lacks, or undefined (also when the SQL fails for another reason). */
export function missingTable(sql: string, tables: ReadonlySet<string>): string | undefined {
  const db = new Database(":memory:");
  // osqueryd has these functions; without them SQLite would stop at the function, before the tables.
  registerOsqueryFunctions(db);
  try {
    for (let created = 0; created <= MAX_TABLES; created++) {
      try {
        db.prepare(sql).finalize();
        return undefined;
      } catch (e) {
        const name = /no such table: (?:main\.)?([^\s]+)/.exec((e as Error).message)?.[1]?.toLowerCase();
        // Columns are osqueryd's business: once SQLite complains about anything else, the tables resolved.
        if (!name) return undefined;
        if (!tables.has(name)) return name;
        db.run(`CREATE TABLE "${name.replace(/"/g, '""')}" (_placeholder)`);
      }
    }
    return undefined;
  } finally {
    db.close();
  }
}

/** The check for osqueryd, from the table list its registry reported. */
export function osquerydUnsupported(tables: ReadonlySet<string>): UnsupportedCheck {
  return (q) => {
    const missing = missingTable(q.sql, tables);
    return missing
      ? { code: "HND_QUERY_UNKNOWN_TABLE", message: `no such table: ${missing} (osqueryd's registry)` }
      : undefined;
  };
}
