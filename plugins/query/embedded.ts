/**
 * The embedded engine: SQLite (bun:sqlite) over osquery-compatible tables
 * produced from the live system per query. SQLite finds the tables a query
 * uses (preparing it against an empty database names each missing table in
 * turn), only those are produced, only the columns the query names are
 * computed expensively, and `file`/`hash` get the paths its constraints
 * name. The database is private to the query and set query_only before the
 * query runs, and only single read-only statements are accepted, so a query
 * can neither write nor attach files.
 */
import { Database, type SQLQueryBindings } from "bun:sqlite";
import { type EngineKind, type QueryEngine, type QueryResult, queryError, type ResultRow } from "./engine.ts";
import { registerOsqueryFunctions } from "./functions.ts";
import { processPids } from "./pid-constraint.ts";
import {
  type ConstraintSource,
  checkStatement,
  namedIdentifiers,
  requiredConstraints,
  selectsStar,
  type Token,
  tableAliases,
} from "./sql.ts";
import {
  type Cell,
  GENERATORS,
  type GenContext,
  type Introspection,
  type Row,
  SCHEMAS,
  TABLE_NAMES,
} from "./tables/index.ts";
import { createTableSql } from "./tables/schema.ts";

/** More tables than this in one query is not a query we want to materialise. */
const MAX_TABLES = 32;

export interface QueryPlan {
  tokens: Token[];
  /** osquery tables the query uses, in the order SQLite asked for them. */
  tables: string[];
}

/**
 * Checks a query without producing any data: one read-only statement, known
 * tables, valid SQL. Used to validate packs and before every run.
 */
export function planQuery(sql: string, into?: Database): QueryPlan {
  const db = into ?? new Database(":memory:");
  if (!into) registerOsqueryFunctions(db);
  const check = checkStatement(sql);
  if (!check.ok) {
    if (check.kind === "syntax") throw queryError("HND_QUERY_SQL", check.reason);
    throw queryError("HND_QUERY_REFUSED", `query refused: ${check.reason}`);
  }
  const tables: string[] = [];
  try {
    for (;;) {
      try {
        db.prepare(sql).finalize();
        break;
      } catch (e) {
        const message = (e as Error).message;
        const fn = /no such function: ([^\s]+)/.exec(message)?.[1];
        if (fn) throw queryError("HND_QUERY_UNKNOWN_FUNCTION", message, { function: fn });
        const missing = /no such table: (?:main\.)?([^\s]+)/.exec(message)?.[1];
        if (!missing) throw queryError("HND_QUERY_SQL", message);
        const name = missing.toLowerCase();
        const schema = SCHEMAS[name];
        if (!schema) throw queryError("HND_QUERY_UNKNOWN_TABLE", `no such table: ${name}`, { table: name });
        if (tables.includes(name) || tables.length >= MAX_TABLES) throw queryError("HND_QUERY_SQL", message);
        db.run(createTableSql(schema));
        tables.push(name);
      }
    }
  } finally {
    if (!into) db.close();
  }
  return { tokens: check.tokens, tables };
}

function toText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  return String(v);
}

export interface EmbeddedOptions {
  /** Prefix for system files; tests point it at a fixture tree. */
  root?: string;
  /** What the engine's host knows about itself, for osquery_info and osquery_schedule. */
  introspection?: () => Introspection;
}

export class EmbeddedEngine implements QueryEngine {
  readonly kind: EngineKind = "embedded";
  private readonly root: string;
  private readonly introspection: (() => Introspection) | undefined;
  /** Tables the last query made the engine produce, in order (diagnostics and tests). */
  lastProduced: string[] = [];

  constructor(opts: EmbeddedOptions = {}) {
    this.root = opts.root ?? "";
    this.introspection = opts.introspection;
  }

  async tables(): Promise<string[]> {
    return [...TABLE_NAMES];
  }

  async query(sql: string): Promise<QueryResult> {
    return this.querySync(sql);
  }

  /** Synchronous core, so a benchmark can time the engine without the event loop. */
  querySync(sql: string): QueryResult {
    const db = new Database(":memory:", { safeIntegers: true });
    registerOsqueryFunctions(db);
    try {
      const plan = planQuery(sql, db);
      const warnings: string[] = [];
      this.materialise(db, plan, warnings);
      db.run("PRAGMA query_only = ON");
      let stmt: ReturnType<Database["prepare"]>;
      try {
        stmt = db.prepare(sql);
      } catch (e) {
        throw queryError("HND_QUERY_SQL", (e as Error).message);
      }
      try {
        const columns = stmt.columnNames;
        let values: unknown[][];
        try {
          values = stmt.values() as unknown[][];
        } catch (e) {
          throw queryError("HND_QUERY_SQL", (e as Error).message);
        }
        const rows: ResultRow[] = values.map((v) => {
          const row: ResultRow = {};
          columns.forEach((c, i) => {
            row[c] = toText(v[i]);
          });
          return row;
        });
        return { columns, rows, warnings };
      } finally {
        stmt.finalize();
      }
    } finally {
      db.close();
    }
  }

  private materialise(db: Database, plan: QueryPlan, warnings: string[]): void {
    const star = selectsStar(plan.tokens);
    const named = namedIdentifiers(plan.tokens);
    const wants = (c: string) => star || named.has(c);
    const produced = new Map<string, Row[]>();
    const warn = (m: string) => {
      if (!warnings.includes(m)) warnings.push(m);
    };
    const baseCtx = {
      wants,
      warn,
      root: this.root,
      paths: [],
      directories: [],
      likes: [],
      ...(this.introspection ? { introspection: this.introspection() } : {}),
    };
    this.lastProduced = [];
    const produce = (table: string, ctx: GenContext) => {
      this.lastProduced.push(table);
      const rows = GENERATORS[table]!(ctx);
      produced.set(table, rows);
      insertRows(db, table, rows);
    };
    const required = plan.tables.filter((t) => SCHEMAS[t]?.required);
    // A query of `processes` alone may name the pids it wants (osquery's index column).
    const pids =
      plan.tables.length === 1 && plan.tables[0] === "processes" ? processPids(plan.tokens) : undefined;
    for (const t of plan.tables) if (!SCHEMAS[t]?.required) produce(t, pids ? { ...baseCtx, pids } : baseCtx);
    if (required.length === 0) return;

    const aliases = tableAliases(plan.tokens, new Set(plan.tables));
    const pending = new Set(required);
    // file and hash may feed each other (hash JOIN file USING (path)): resolve in dependency order.
    for (let round = 0; round < required.length + 1 && pending.size > 0; round++) {
      for (const t of [...pending]) {
        const c = requiredConstraints(plan.tokens, t, aliases);
        const deps = [...c.path, ...c.directory].filter(
          (s): s is Extract<ConstraintSource, { kind: "column" }> => s.kind === "column",
        );
        const waiting = deps.some((d) => pending.has(d.table) && d.table !== t);
        if (waiting && round < required.length) continue;
        const values = (sources: ConstraintSource[], kind: "equals" | "like") => {
          const out: string[] = [];
          for (const s of sources) {
            if (s.kind === "equals" && kind === "equals") out.push(s.value);
            else if (s.kind === "like" && kind === "like") out.push(s.pattern);
            else if (s.kind === "column" && kind === "equals") {
              for (const r of produced.get(s.table) ?? []) {
                const v = r[s.column];
                if (v !== null && v !== undefined && v !== "") out.push(`${s.prefix}${String(v)}${s.suffix}`);
              }
            }
          }
          return [...new Set(out)];
        };
        produce(t, {
          ...baseCtx,
          paths: values(c.path, "equals"),
          // `directory LIKE p` means the entries of every directory matching p.
          likes: [
            ...values(c.path, "like"),
            ...values(c.directory, "like").map((p) => `${p.replace(/\/+$/, "")}/%`),
          ],
          directories: values(c.directory, "equals"),
        });
        pending.delete(t);
      }
    }
  }

  async close(): Promise<void> {}
}

function insertRows(db: Database, table: string, rows: Row[]): void {
  if (rows.length === 0) return;
  const schema = SCHEMAS[table]!;
  const names = schema.columns.map(([n]) => n);
  const insert = db.prepare(
    `INSERT INTO "${table}" (${names.map((n) => `"${n}"`).join(", ")}) VALUES (${names.map(() => "?").join(", ")})`,
  );
  const cell = (v: Cell | undefined): SQLQueryBindings => (v === undefined ? null : (v as SQLQueryBindings));
  db.transaction(() => {
    for (const r of rows) insert.run(...names.map((n) => cell(r[n])));
  })();
  insert.finalize();
}
