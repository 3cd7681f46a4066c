/**
 * The osqueryd engine: runs queries on a real osqueryd through its
 * extension manager socket (ExtensionManager.query), so a host that already
 * runs osquery gets the full osquery table set under the same scheduler,
 * watchdog and sinks. One connection, reopened after any failure; every
 * call has a timeout so a wedged osqueryd cannot stall the schedule.
 */
import * as thrift from "thrift";
import { HandlerError } from "../../core/errors.ts";
import { type EngineKind, type QueryEngine, type QueryResult, queryError } from "./engine.ts";
import { ExtensionManagerClient, type ExtensionResponse } from "./osquery-thrift.ts";
import { checkStatement } from "./sql.ts";

/** In the runtime since thrift 0.13, missing from @types/thrift. */
const createUDSConnection = (
  thrift as unknown as {
    createUDSConnection(path: string, options: thrift.ConnectOptions): thrift.Connection;
  }
).createUDSConnection;

interface Link {
  connection: thrift.Connection;
  client: ExtensionManagerClient;
  ready: Promise<void>;
  closed: boolean;
}

export class OsquerydEngine implements QueryEngine {
  readonly kind: EngineKind = "osqueryd";
  private link?: Link;
  private readonly timeoutMs: number;

  constructor(
    readonly socketPath: string,
    opts: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  private connect(): Link {
    if (this.link && !this.link.closed) return this.link;
    const connection = createUDSConnection(this.socketPath, {
      transport: thrift.TBufferedTransport,
      protocol: thrift.TBinaryProtocol,
    });
    const client = thrift.createClient(ExtensionManagerClient, connection);
    const link: Link = {
      connection,
      client,
      closed: false,
      ready: new Promise<void>((resolve, reject) => {
        connection.once("connect", () => resolve());
        connection.once("error", reject);
      }),
    };
    const drop = (why: string) => {
      if (link.closed) return;
      link.closed = true;
      client.failAll(queryError("HND_QUERY_OSQUERYD_UNAVAILABLE", `osqueryd at ${this.socketPath}: ${why}`));
    };
    connection.on("error", (e: Error) => drop(e.message));
    connection.on("close", () => drop("connection closed"));
    link.ready.catch(() => {});
    this.link = link;
    return link;
  }

  private async call<T>(what: string, fn: (c: ExtensionManagerClient) => Promise<T>): Promise<T> {
    const link = this.connect();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          queryError(
            "HND_QUERY_OSQUERYD_UNAVAILABLE",
            `osqueryd at ${this.socketPath}: ${what} timed out after ${this.timeoutMs} ms`,
          ),
        );
        // A late answer must not be taken for the next call's: start over on a new connection.
        link.closed = true;
        link.connection.destroy();
      }, this.timeoutMs);
    });
    try {
      await Promise.race([link.ready, timeout]).catch((e) => {
        throw e instanceof HandlerError
          ? e
          : queryError(
              "HND_QUERY_OSQUERYD_UNAVAILABLE",
              `osqueryd at ${this.socketPath}: ${(e as Error).message}`,
            );
      });
      return await Promise.race([fn(link.client), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async ping(): Promise<void> {
    const s = await this.call("ping", (c) => c.ping());
    if (s.code !== 0) throw queryError("HND_QUERY_OSQUERYD", `osqueryd ping: ${s.message}`);
  }

  async tables(): Promise<string[]> {
    const r = await this.call("query", (c) =>
      c.query("SELECT name FROM osquery_registry WHERE registry = 'table' AND active = 1"),
    );
    this.check(r, "listing tables");
    return r.response
      .map((row) => row.name ?? "")
      .filter(Boolean)
      .sort();
  }

  async query(sql: string): Promise<QueryResult> {
    const check = checkStatement(sql);
    if (!check.ok) {
      if (check.kind === "syntax") throw queryError("HND_QUERY_SQL", check.reason);
      throw queryError("HND_QUERY_REFUSED", `query refused: ${check.reason}`);
    }
    const r = await this.call("query", (c) => c.query(sql));
    this.check(r, "query");
    // Rows arrive as maps; the column order comes from osqueryd's own parse of the query.
    let columns: string[] = [];
    try {
      const cols = await this.call("getQueryColumns", (c) => c.getQueryColumns(sql));
      if (cols.status.code === 0) columns = cols.response.flatMap((entry) => Object.keys(entry));
    } catch {
      columns = [];
    }
    if (columns.length === 0 && r.response[0]) columns = Object.keys(r.response[0]);
    return { columns, rows: r.response, warnings: [] };
  }

  private check(r: ExtensionResponse, what: string): void {
    if (r.status.code === 0) return;
    const message = r.status.message || `status ${r.status.code}`;
    if (/no such table/i.test(message)) {
      const table = /no such table: (\S+)/i.exec(message)?.[1];
      throw queryError("HND_QUERY_UNKNOWN_TABLE", message, table ? { table } : undefined);
    }
    throw queryError(
      /syntax error|no such column|incomplete input/i.test(message) ? "HND_QUERY_SQL" : "HND_QUERY_OSQUERYD",
      `osqueryd ${what}: ${message}`,
    );
  }

  async close(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    if (link && !link.closed) {
      link.closed = true;
      link.connection.end();
    }
  }
}
