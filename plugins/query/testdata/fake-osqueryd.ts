/**
 * A stand-in osqueryd for tests and benchmarks: the ExtensionManager side
 * of osquery's Thrift IDL served by the `thrift` package's own server
 * (TBufferedTransport + TBinaryProtocol) on a unix socket, answering
 * queries from the embedded engine plus an `osquery_registry` table, the
 * way osqueryd answers extensions. `stall` makes it stop answering.
 */
import { rmSync } from "node:fs";
import type { Server } from "node:net";
import * as thrift from "thrift";
import { EmbeddedEngine } from "../embedded.ts";
import { ExtensionManagerProcessor, type ExtensionResponse } from "../osquery-thrift.ts";
import { TABLE_NAMES } from "../tables/index.ts";

export interface FakeOsqueryd {
  socket: string;
  queries: string[];
  stall: boolean;
  close(): Promise<void>;
}

const ok = (response: Record<string, string>[]): ExtensionResponse => ({
  status: { code: 0, message: "OK", uuid: 0 },
  response,
});

export async function startFakeOsqueryd(
  socket: string,
  extraTables: Record<string, Record<string, string>[]> = {},
): Promise<FakeOsqueryd> {
  rmSync(socket, { force: true });
  const engine = new EmbeddedEngine();
  const fake: FakeOsqueryd = { socket, queries: [], stall: false, close: async () => {} };
  const never = new Promise<never>(() => {});
  const answer = (sql: string, columnsOnly: boolean): ExtensionResponse | Promise<ExtensionResponse> => {
    fake.queries.push(sql);
    if (fake.stall) return never;
    if (/from\s+osquery_registry/i.test(sql)) {
      return ok([...TABLE_NAMES, "osquery_info", ...Object.keys(extraTables)].map((name) => ({ name })));
    }
    for (const [name, rows] of Object.entries(extraTables)) {
      if (new RegExp(`from\\s+${name}\\b`, "i").test(sql)) return ok(rows);
    }
    try {
      const r = engine.querySync(sql);
      // getQueryColumns answers one {column: type} map per column, in order.
      return columnsOnly ? ok(r.columns.map((c) => ({ [c]: "TEXT" }))) : ok(r.rows);
    } catch (e) {
      return { status: { code: 1, message: (e as Error).message, uuid: 0 }, response: [] };
    }
  };
  const server = thrift.createServer(
    ExtensionManagerProcessor as unknown as thrift.TProcessorConstructor<ExtensionManagerProcessor, unknown>,
    {
      ping: () => ({ code: 0, message: "OK", uuid: 0 }),
      extensions: () =>
        new Map([[0, { name: "core", version: "5.12.0", sdk_version: "5.12.0", min_sdk_version: "0.0.0" }]]),
      query: (sql: string) => answer(sql, false),
      getQueryColumns: (sql: string) => answer(sql, true),
    },
    { transport: thrift.TBufferedTransport, protocol: thrift.TBinaryProtocol },
  ) as unknown as Server;
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      rmSync(socket, { force: true });
    });
  return fake;
}
