/**
 * The one query interface the fleet service uses, over two engines:
 * bun:sqlite (embedded default, one file under the release state dir) and
 * PostgreSQL (Bun's built-in `Bun.sql`). SQL is written once, in the
 * common subset both accept, with `$1…$n` placeholders; the SQLite driver
 * rewrites them to `?1…?n`. Numbers come back as JS numbers from both
 * (PostgreSQL returns BIGINT and COUNT as strings; callers use `num()`).
 */
import { Database } from "bun:sqlite";
import { SQL } from "bun";

export type Param = string | number | null;
export type Row = Record<string, unknown>;

export interface Queryable {
  all(sql: string, params?: Param[]): Promise<Row[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: Param[]): Promise<number>;
}

export interface Driver extends Queryable {
  readonly dialect: "sqlite" | "postgres";
  /** Where the data lives, for messages (the URL without a password). */
  readonly where: string;
  /** Script of several statements (migrations). */
  exec(script: string): Promise<void>;
  /** All-or-nothing: a process killed inside `fn` leaves no part of it. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  /** A connection of its own (PostgreSQL session-level advisory locks live on one). */
  reserve(): Promise<Queryable & { release(): void }>;
  close(): Promise<void>;
}

export const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

/** Rows per INSERT at 10 columns: PostgreSQL allows 65535 parameters (insertRows scales it to the row width). */
const ROWS_PER_INSERT = 500;

/** Multi-row INSERT in chunks (one round trip per chunk). */
export async function insertRows(q: Queryable, head: string, rows: Param[][], tail: string): Promise<void> {
  if (rows.length === 0) return;
  const width = rows[0]!.length;
  const per = Math.max(1, Math.floor(ROWS_PER_INSERT * (10 / width)));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    const values = chunk
      .map((_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(", ")})`)
      .join(", ");
    await q.run(`${head} ${values} ${tail}`, chunk.flat());
  }
}

const toSqlite = (sql: string) => sql.replace(/\$(\d+)/g, "?$1");

export class SqliteDriver implements Driver {
  readonly dialect = "sqlite" as const;
  private readonly db: Database;
  /** bun:sqlite is synchronous, but an async `tx` body can interleave with other callers: serialise. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly where: string) {
    this.db = new Database(where, { create: true, strict: false });
    // WAL: readers (status, the console, a second replica) never block the writer; busy_timeout
    // makes a second process wait for the write lock instead of failing at once.
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL;");
  }

  private q(): Queryable {
    return {
      all: async (sql, params = []) => this.db.query(toSqlite(sql)).all(...params) as Row[],
      run: async (sql, params = []) => this.db.query(toSqlite(sql)).run(...params).changes,
    };
  }

  all(sql: string, params?: Param[]): Promise<Row[]> {
    return this.serial(() => this.q().all(sql, params));
  }

  run(sql: string, params?: Param[]): Promise<number> {
    return this.serial(() => this.q().run(sql, params));
  }

  async exec(script: string): Promise<void> {
    await this.serial(async () => this.db.exec(script));
  }

  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      // IMMEDIATE takes the write lock up front, so two processes cannot both read then write.
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const out = await fn(this.q());
        this.db.exec("COMMIT");
        return out;
      } catch (e) {
        this.db.exec("ROLLBACK");
        throw e;
      }
    });
  }

  async reserve(): Promise<Queryable & { release(): void }> {
    return { all: (s, p) => this.all(s, p), run: (s, p) => this.run(s, p), release() {} };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    await this.chain;
    this.db.close();
  }
}

export class PostgresDriver implements Driver {
  readonly dialect = "postgres" as const;
  readonly where: string;
  private readonly sql: SQL;

  constructor(url: string, max = 10) {
    const u = new URL(url);
    u.password = "";
    this.where = u.href;
    this.sql = new SQL({ url, max, idleTimeout: 30 });
  }

  private static wrap(s: SQL): Queryable {
    return {
      all: async (sql, params = []) => (await s.unsafe(sql, params)) as Row[],
      run: async (sql, params = []) => ((await s.unsafe(sql, params)) as { count: number }).count ?? 0,
    };
  }

  all(sql: string, params?: Param[]): Promise<Row[]> {
    return PostgresDriver.wrap(this.sql).all(sql, params);
  }

  run(sql: string, params?: Param[]): Promise<number> {
    return PostgresDriver.wrap(this.sql).run(sql, params);
  }

  async exec(script: string): Promise<void> {
    await this.sql.unsafe(script);
  }

  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    return this.sql.begin((t) => fn(PostgresDriver.wrap(t as unknown as SQL))) as Promise<T>;
  }

  async reserve(): Promise<Queryable & { release(): void }> {
    const c = await this.sql.reserve();
    return { ...PostgresDriver.wrap(c as unknown as SQL), release: () => c.release() };
  }

  async close(): Promise<void> {
    await this.sql.close({ timeout: 5 });
  }
}
