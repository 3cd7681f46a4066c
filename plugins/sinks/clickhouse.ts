/**
 * ClickHouse destination over the HTTP interface: `INSERT … FORMAT
 * JSONEachRow`, body gzip'd.
 *
 * Idempotency at insert time, on any ClickHouse version. Debian's 18.16 has
 * neither `insert_deduplication_token` (22.x) nor
 * `non_replicated_deduplication_window` (21.x), and a retried insert into a
 * non-replicated MergeTree is stored again. So each delivery of a batch
 *   1. asks `system.processes` whether an earlier attempt of this batch is
 *      still running (every attempt's INSERT carries the same `query_id`,
 *      derived from the batch key) — if so, retry later;
 *   2. reads which `row_seq` of this batch key the table already holds (a
 *      primary-key range: the table is ordered by (batch_key, row_seq));
 *   3. inserts only the missing rows, with that `query_id` — ClickHouse
 *      refuses a second query with a running query's id (code 216), so two
 *      attempts never run at once.
 * Step 1 comes before step 2: an earlier attempt not running at 1 has
 * either committed (then 2 sees its rows) or will never commit. The one
 * case left is a request still unread in the server's socket queue when
 * the client gave up (it starts after step 1); the table stays a
 * ReplacingMergeTree on (batch_key, row_seq), so even that copy collapses
 * at the next merge or under FINAL. docs/sinks.md says so; the test proves
 * the rest without FINAL.
 *
 * Columns and decorations are JSON text in String columns (18.16 has no
 * JSON or Map type). Every failure is retried — ClickHouse answers 500 for
 * schema conflicts and outages alike, and rejecting a batch for a table the
 * operator must fix would lose rows; schema conflicts are labelled
 * SINK_SCHEMA_CONFLICT in the error the stats show.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { Destination, Outcome, OutgoingBatch } from "./queued-sink.ts";
import { toRow } from "./result-rows.ts";

const ident = lazySchema(() =>
  z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "a ClickHouse identifier")),
);

export const ClickHouseSinkSchema = lazySchema(() =>
  z.strictObject({
    /** HTTP interface, e.g. http://clickhouse:8123 */
    url: z.url(),
    database: z._default(ident, "default"),
    table: z._default(ident, "outpost_results"),
    user: z.optional(z.string().check(z.minLength(1))),
    /** File holding the password (one line). */
    passwordFile: z.optional(z.string().check(z.minLength(1))),
    timeoutSeconds: z._default(z.number().check(z.positive(), z.lte(600)), 30),
  }),
);
export type ClickHouseSinkConfig = z.infer<typeof ClickHouseSinkSchema>;

/**
 * Server error codes that mean "the table is not what we expect" rather than "try later": unknown
 * table/column, type mismatch, and the parse errors (6, 26, 27, 117) that our fixed row shape only
 * meets when the table has other columns or types.
 */
const SCHEMA_CODES = new Set([6, 16, 26, 27, 44, 47, 53, 60, 81, 117]);
const SCHEMA_CONFLICT = "SINK_SCHEMA_CONFLICT";
/** QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: an earlier attempt of this batch is still inserting. */
const SAME_ID_RUNNING = 216;

/** A ClickHouse string literal. */
const quote = (s: string) => `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;

/**
 * The `query_id` every attempt to insert batch `key` into `db.table` carries: the same on each retry
 * (so the server refuses a second attempt while the first runs, and the next one can see it in
 * system.processes), distinct per table and batch.
 */
export function insertQueryId(database: string, table: string, key: string): string {
  return `outpost-insert-${new Bun.CryptoHasher("sha256").update(`${database}.${table}\0${key}`).digest("hex").slice(0, 32)}`;
}

/** What went wrong talking to the server: a response that was not OK, or a thrown fetch error. */
class Failed {
  constructor(
    readonly res: Response | undefined,
    readonly text: string,
    readonly error?: Error,
  ) {}
}

export class ClickHouseDestination implements Destination {
  readonly name: string;
  readonly kind = "clickhouse";
  /**
   * batchesAlreadyStored / rowsAlreadyStored: deliveries that found (some of) their rows in the
   * table already — an earlier attempt committed but its answer was lost — and inserted only the rest.
   */
  readonly counters = { replacedChars: 0, batchesAlreadyStored: 0, rowsAlreadyStored: 0 };
  private ready = false;
  private readonly auth?: string;

  constructor(
    private readonly cfg: ClickHouseSinkConfig,
    private readonly doFetch: typeof fetch = fetch,
  ) {
    this.name = `clickhouse:${cfg.database}.${cfg.table}`;
    if (cfg.user) {
      let pw = "";
      try {
        pw = cfg.passwordFile ? readFileSync(cfg.passwordFile, "utf8").trim() : "";
      } catch (e) {
        throw new ConfigError(
          "CFG_INVALID",
          `clickhouse sink: cannot read passwordFile: ${(e as Error).message}`,
          { file: cfg.passwordFile! },
        );
      }
      this.auth = `Basic ${Buffer.from(`${cfg.user}:${pw}`).toString("base64")}`;
    }
  }

  private get table(): string {
    return `${this.cfg.database}.${this.cfg.table}`;
  }

  /** Runs one statement; the answer's text, or a Failed. */
  private async exec(
    query: string,
    signal: AbortSignal,
    opts: { body?: Uint8Array; queryId?: string } = {},
  ): Promise<string | Failed> {
    const url = new URL(this.cfg.url);
    url.searchParams.set("query", query);
    if (opts.queryId) url.searchParams.set("query_id", opts.queryId);
    let res: Response;
    try {
      res = await this.doFetch(url, {
        method: "POST",
        headers: {
          ...(opts.body ? { "content-encoding": "gzip", "content-type": "application/x-ndjson" } : {}),
          ...(this.auth ? { authorization: this.auth } : {}),
        },
        ...(opts.body ? { body: opts.body } : {}),
        signal: AbortSignal.any([AbortSignal.timeout(this.cfg.timeoutSeconds * 1000), signal]),
      });
    } catch (e) {
      return new Failed(undefined, "", e as Error);
    }
    const text = await res.text().catch(() => "");
    return res.ok ? text : new Failed(res, text);
  }

  private async ensureTable(signal: AbortSignal): Promise<Failed | null> {
    if (this.ready) return null;
    for (const q of [
      `CREATE DATABASE IF NOT EXISTS ${this.cfg.database}`,
      `CREATE TABLE IF NOT EXISTS ${this.table} (batch_key String, row_seq UInt64, name String, hostIdentifier String, calendarTime String, unixTime Int64, epoch Int64, counter Int64, action String, columns String, decorations String, stored_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree() ORDER BY (batch_key, row_seq)`,
    ]) {
      const r = await this.exec(q, signal);
      if (r instanceof Failed) return r;
    }
    this.ready = true;
    return null;
  }

  async deliver(b: OutgoingBatch, signal: AbortSignal): Promise<Outcome> {
    const count = { n: 0 };
    const rows: { seq: number; json: string }[] = [];
    for (const [i, line] of b.lines().entries()) {
      const r = toRow(line, count);
      if (!r) return { kind: "rejected", error: `batch ${b.key}: a line is not a JSON object` };
      const seq = b.first + i;
      rows.push({
        seq,
        json: JSON.stringify({
          batch_key: b.key,
          row_seq: seq,
          ...r,
          columns: JSON.stringify(r.columns),
          decorations: JSON.stringify(r.decorations),
        }),
      });
    }
    const queryId = insertQueryId(this.cfg.database, this.cfg.table, b.key);
    const ready = await this.ensureTable(signal);
    if (ready) return this.failure(ready);
    // 1. An earlier attempt still inserting: its rows are not visible yet, so wait for it.
    const running = await this.exec(
      `SELECT count() FROM system.processes WHERE query_id = ${quote(queryId)}`,
      signal,
    );
    if (running instanceof Failed) return this.failure(running);
    if (Number(running.trim()) > 0)
      return {
        kind: "retry",
        error: `${this.name}: an earlier attempt of batch ${b.key} is still running on the server (query_id ${queryId})`,
      };
    // 2. What of this batch the table holds (an earlier attempt committed, its answer lost).
    const held = await this.exec(
      `SELECT DISTINCT row_seq FROM ${this.table} WHERE batch_key = ${quote(b.key)} FORMAT TabSeparated`,
      signal,
    );
    if (held instanceof Failed) return this.failure(held);
    const have = new Set(held.split("\n").filter(Boolean).map(Number));
    const missing = have.size === 0 ? rows : rows.filter((r) => !have.has(r.seq));
    // 3. The rest, under the batch's query_id.
    if (missing.length > 0) {
      const inserted = await this.exec(`INSERT INTO ${this.table} FORMAT JSONEachRow`, signal, {
        body: Bun.gzipSync(Buffer.from(`${missing.map((r) => r.json).join("\n")}\n`)),
        queryId,
      });
      if (inserted instanceof Failed) return this.failure(inserted);
    }
    if (missing.length < rows.length) {
      this.counters.batchesAlreadyStored++;
      this.counters.rowsAlreadyStored += rows.length - missing.length;
    }
    this.counters.replacedChars += count.n;
    return { kind: "done" };
  }

  private failure(f: Failed): Outcome {
    if (f.error) return { kind: "retry", error: `${this.name}: ${f.error.name}: ${f.error.message}` };
    const code = Number(/Code: (\d+)/.exec(f.text)?.[1]);
    const first = f.text.split("\n")[0]!.slice(0, 300);
    if (SCHEMA_CODES.has(code)) {
      this.ready = false;
      return { kind: "retry", error: `${SCHEMA_CONFLICT}: ${this.name}: ${first}` };
    }
    if (code === SAME_ID_RUNNING)
      return {
        kind: "retry",
        error: `${this.name}: an earlier attempt of this batch is still running: ${first}`,
      };
    return { kind: "retry", error: `${this.name}: HTTP ${f.res?.status}: ${first}` };
  }
}
