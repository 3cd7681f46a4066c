/**
 * PostgreSQL destination: result rows into a table with osquery's
 * result-log fields, exactly once per batch.
 *
 * Each batch is ONE transaction that first inserts its idempotency key
 * into `<table>_batches` (primary key; ON CONFLICT DO NOTHING). No row
 * back means an earlier attempt committed — its answer was lost — so the
 * batch is done without touching the rows; otherwise the rows follow as
 * multi-row inserts of at most `batchRows` rows and the transaction
 * commits both or neither. Tables are created if missing.
 *
 * Errors: connection failures, timeouts and server-side trouble → retry;
 * a schema conflict (the table exists with other columns or types,
 * SQLSTATE class 42) → retry with a SINK_SCHEMA_CONFLICT error the
 * operator sees in stats and health, because dropping the batch would lose
 * rows for a fault of the store's; data errors (class 22) that the text
 * cleaning in result-rows.ts did not prevent → rejected.
 */
import { SQL } from "bun";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { Destination, Outcome, OutgoingBatch } from "./queued-sink.ts";
import { type ResultRow, toRow } from "./result-rows.ts";

export const PostgresSinkSchema = lazySchema(() =>
  z.strictObject({
    /** postgres://user:pass@host:port/db */
    url: z.string().check(z.regex(/^postgres(ql)?:\/\//, "a postgres:// URL")),
    table: z._default(
      z.string().check(z.regex(/^[a-z_][a-z0-9_]{0,50}$/, "a lower-case SQL identifier")),
      "outpost_results",
    ),
    /** Rows per INSERT statement (a batch may take several, all in one transaction). */
    batchRows: z._default(z.int().check(z.gte(1), z.lte(5000)), 1000),
    /** Connection timeout, and the longest one batch's transaction may take (statement_timeout + a client-side guard). */
    timeoutSeconds: z._default(z.number().check(z.positive(), z.lte(600)), 30),
  }),
);
export type PostgresSinkConfig = z.infer<typeof PostgresSinkSchema>;

const COLS = 11;
const SCHEMA_CONFLICT = "SINK_SCHEMA_CONFLICT";

export class PostgresDestination implements Destination {
  readonly name: string;
  readonly kind = "postgres";
  private sql?: SQL;
  private ready = false;
  readonly counters = { replacedChars: 0, batchesAlreadyStored: 0 };

  constructor(private readonly cfg: PostgresSinkConfig) {
    this.name = `postgres:${cfg.table}`;
  }

  private client(): SQL {
    this.sql ??= new SQL({
      url: this.cfg.url,
      max: 1,
      connectionTimeout: this.cfg.timeoutSeconds,
      idleTimeout: 60,
    });
    return this.sql;
  }

  private async ensureTables(sql: SQL): Promise<void> {
    if (this.ready) return;
    const t = this.cfg.table;
    await sql.unsafe(`CREATE TABLE IF NOT EXISTS ${t} (
      id bigserial PRIMARY KEY,
      batch_key text NOT NULL,
      row_seq bigint NOT NULL,
      name text NOT NULL,
      "hostIdentifier" text NOT NULL,
      "calendarTime" text NOT NULL,
      "unixTime" bigint NOT NULL,
      epoch bigint NOT NULL,
      counter bigint NOT NULL,
      action text NOT NULL,
      columns jsonb NOT NULL,
      decorations jsonb NOT NULL,
      stored_at timestamptz NOT NULL DEFAULT now())`);
    await sql.unsafe(`CREATE TABLE IF NOT EXISTS ${t}_batches (
      key text PRIMARY KEY, rows integer NOT NULL, stored_at timestamptz NOT NULL DEFAULT now())`);
    this.ready = true;
  }

  async deliver(b: OutgoingBatch, signal: AbortSignal): Promise<Outcome> {
    const count = { n: 0 };
    const rows: ResultRow[] = [];
    for (const line of b.lines()) {
      const r = toRow(line, count);
      if (!r) return { kind: "rejected", error: `batch ${b.key}: a line is not a JSON object` };
      rows.push(r);
    }
    if (signal.aborted) return { kind: "retry", error: "closing" };
    const sql = this.client();
    const t = this.cfg.table;
    try {
      const ms = Math.round(this.cfg.timeoutSeconds * 1000);
      const work = this.ensureTables(sql).then(() =>
        sql.begin(async (tx) => {
          // A store that hangs (locks, overload) must not stall the queue: the server gives up…
          await tx.unsafe(`SET LOCAL statement_timeout = ${ms}`);
          const claimed = await tx.unsafe(
            `INSERT INTO ${t}_batches (key, rows) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key`,
            [b.key, rows.length],
          );
          if (claimed.length === 0) return false;
          for (let at = 0; at < rows.length; at += this.cfg.batchRows) {
            const chunk = rows.slice(at, at + this.cfg.batchRows);
            const params: unknown[] = [];
            const tuples = chunk.map((r, i) => {
              const o = params.length;
              params.push(
                b.key,
                b.first + at + i,
                r.name,
                r.hostIdentifier,
                r.calendarTime,
                r.unixTime,
                r.epoch,
                r.counter,
                r.action,
                // Objects, not JSON text: Bun's driver encodes them as jsonb itself (a string would be stored as a JSON string).
                r.columns,
                r.decorations,
              );
              const p = Array.from({ length: COLS }, (_, k) => `$${o + k + 1}`);
              return `(${p.join(",")})`;
            });
            await tx.unsafe(
              `INSERT INTO ${t} (batch_key, row_seq, name, "hostIdentifier", "calendarTime", "unixTime", epoch, counter, action, columns, decorations) VALUES ${tuples.join(",")}`,
              params,
            );
          }
          return true;
        }),
      );
      // …and so does the client, for a server that stopped answering at all (the retry reconnects).
      let timer: ReturnType<typeof setTimeout> | undefined;
      work.catch(() => {}); // settled late after a client-side timeout: already reported
      const stored = await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms + 1000);
        }),
      ]).finally(() => clearTimeout(timer));
      if (!stored) this.counters.batchesAlreadyStored++;
      this.counters.replacedChars += count.n;
      return { kind: "done" };
    } catch (e) {
      const state = String((e as { errno?: unknown }).errno ?? "");
      const msg = (e as Error).message;
      if (state.startsWith("42")) {
        this.ready = false;
        return { kind: "retry", error: `${SCHEMA_CONFLICT}: table ${t}: ${msg} (SQLSTATE ${state})` };
      }
      if (state.startsWith("22"))
        return { kind: "rejected", error: `batch ${b.key}: ${msg} (SQLSTATE ${state})` };
      // Connection lost or refused: start over with a fresh client next time.
      await this.reset();
      return { kind: "retry", error: `postgres: ${msg}${state ? ` (SQLSTATE ${state})` : ""}` };
    }
  }

  private async reset(): Promise<void> {
    const s = this.sql;
    this.sql = undefined;
    this.ready = false;
    await s?.close({ timeout: 0 }).catch(() => {});
  }

  async close(): Promise<void> {
    await this.reset();
  }
}
