/**
 * ClickHouse destination over the HTTP interface: `INSERT … FORMAT
 * JSONEachRow`, body gzip'd.
 *
 * Idempotency: ClickHouse 18.16 (Debian's) has no insert_deduplication_token
 * and a retried insert of a non-replicated MergeTree is stored again, so the
 * table is a ReplacingMergeTree ordered by (batch_key, row_seq): a batch
 * delivered twice (its answer was lost) leaves two copies of the same keys
 * until a background merge collapses them, and `SELECT … FINAL` (or
 * `GROUP BY batch_key, row_seq`) counts each row once at any time. Say so to
 * whoever queries the table (docs/sinks.md); the test proves it.
 *
 * Columns and decorations are JSON text in String columns (18.16 has no
 * JSON or Map type). Every failure is retried — ClickHouse answers 500 for
 * schema conflicts and outages alike, and rejecting a batch for a table the
 * operator must fix would lose rows; schema conflicts are labelled
 * SINK_SCHEMA_CONFLICT in the error the stats show.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { z } from "zod";
import { ConfigError } from "../../core/errors.ts";
import type { Destination, Outcome, OutgoingBatch } from "./queued-sink.ts";
import { toRow } from "./result-rows.ts";

const ident = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "a ClickHouse identifier");

export const ClickHouseSinkSchema = z
  .object({
    /** HTTP interface, e.g. http://clickhouse:8123 */
    url: z.string().url(),
    database: ident.default("default"),
    table: ident.default("outpost_results"),
    user: z.string().min(1).optional(),
    /** File holding the password (one line). */
    passwordFile: z.string().min(1).optional(),
    timeoutSeconds: z.number().positive().max(600).default(30),
  })
  .strict();
export type ClickHouseSinkConfig = z.infer<typeof ClickHouseSinkSchema>;

/**
 * Server error codes that mean "the table is not what we expect" rather than "try later": unknown
 * table/column, type mismatch, and the parse errors (6, 26, 27, 117) that our fixed row shape only
 * meets when the table has other columns or types.
 */
const SCHEMA_CODES = new Set([6, 16, 26, 27, 44, 47, 53, 60, 81, 117]);
const SCHEMA_CONFLICT = "SINK_SCHEMA_CONFLICT";

export class ClickHouseDestination implements Destination {
  readonly name: string;
  readonly kind = "clickhouse";
  readonly counters = { replacedChars: 0 };
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

  private async exec(query: string, body: Uint8Array | undefined, signal: AbortSignal): Promise<Response> {
    const url = new URL(this.cfg.url);
    url.searchParams.set("query", query);
    return this.doFetch(url, {
      method: "POST",
      headers: {
        ...(body ? { "content-encoding": "gzip", "content-type": "application/x-ndjson" } : {}),
        ...(this.auth ? { authorization: this.auth } : {}),
      },
      ...(body ? { body } : {}),
      signal: AbortSignal.any([AbortSignal.timeout(this.cfg.timeoutSeconds * 1000), signal]),
    });
  }

  private async ensureTable(signal: AbortSignal): Promise<Response | null> {
    if (this.ready) return null;
    const { database: db, table: t } = this.cfg;
    for (const q of [
      `CREATE DATABASE IF NOT EXISTS ${db}`,
      `CREATE TABLE IF NOT EXISTS ${db}.${t} (batch_key String, row_seq UInt64, name String, hostIdentifier String, calendarTime String, unixTime Int64, epoch Int64, counter Int64, action String, columns String, decorations String, stored_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree() ORDER BY (batch_key, row_seq)`,
    ]) {
      const res = await this.exec(q, undefined, signal);
      if (!res.ok) return res;
      await res.body?.cancel().catch(() => {});
    }
    this.ready = true;
    return null;
  }

  async deliver(b: OutgoingBatch, signal: AbortSignal): Promise<Outcome> {
    const count = { n: 0 };
    const out: string[] = [];
    for (const [i, line] of b.lines().entries()) {
      const r = toRow(line, count);
      if (!r) return { kind: "rejected", error: `batch ${b.key}: a line is not a JSON object` };
      out.push(
        JSON.stringify({
          batch_key: b.key,
          row_seq: b.first + i,
          ...r,
          columns: JSON.stringify(r.columns),
          decorations: JSON.stringify(r.decorations),
        }),
      );
    }
    let res: Response;
    try {
      res =
        (await this.ensureTable(signal)) ??
        (await this.exec(
          `INSERT INTO ${this.cfg.database}.${this.cfg.table} FORMAT JSONEachRow`,
          gzipSync(Buffer.from(`${out.join("\n")}\n`)),
          signal,
        ));
    } catch (e) {
      return { kind: "retry", error: `${this.name}: ${(e as Error).name}: ${(e as Error).message}` };
    }
    const text = await res.text().catch(() => "");
    if (res.ok) {
      this.counters.replacedChars += count.n;
      return { kind: "done" };
    }
    const code = Number(/Code: (\d+)/.exec(text)?.[1]);
    const first = text.split("\n")[0]!.slice(0, 300);
    if (SCHEMA_CODES.has(code)) {
      this.ready = false;
      return { kind: "retry", error: `${SCHEMA_CONFLICT}: ${this.name}: ${first}` };
    }
    return { kind: "retry", error: `${this.name}: HTTP ${res.status}: ${first}` };
  }
}
