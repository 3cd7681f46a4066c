/**
 * The osqueryd engine against a Thrift server implementing osquery's
 * ExtensionManager IDL on a unix socket (the `thrift` package's own server,
 * TBufferedTransport + TBinaryProtocol, as osqueryd uses).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as thrift from "thrift";
import { ExtensionManagerClient } from "./osquery-thrift.ts";
import { OsquerydEngine } from "./osqueryd.ts";
import { type FakeOsqueryd, startFakeOsqueryd } from "./testdata/fake-osqueryd.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-osqueryd-"));
let fake: FakeOsqueryd;
let engine: OsquerydEngine;

beforeAll(async () => {
  fake = await startFakeOsqueryd(join(dir, "osquery.em"), {
    osquery_info: [{ version: "5.12.0", pid: "1" }],
  });
  engine = new OsquerydEngine(fake.socket, { timeoutMs: 2000 });
});
afterAll(async () => {
  await engine.close();
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("OsquerydEngine", () => {
  test("ping and ExtensionManager.extensions over the generated-style client", async () => {
    await engine.ping();
    const conn = (
      thrift as unknown as { createUDSConnection(p: string, o: object): thrift.Connection }
    ).createUDSConnection(fake.socket, {
      transport: thrift.TBufferedTransport,
      protocol: thrift.TBinaryProtocol,
    });
    const client = thrift.createClient(ExtensionManagerClient, conn);
    const ext = await client.extensions();
    expect(ext.get(0)?.name).toBe("core");
    conn.end();
  });

  test("query returns rows as strings with osqueryd's column order", async () => {
    const r = await engine.query(`SELECT pid, name, uid FROM processes WHERE pid = ${process.pid}`);
    expect(r.columns).toEqual(["pid", "name", "uid"]);
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]!.pid).toBe(String(process.pid));
    expect(fake.queries).toContain(`SELECT pid, name, uid FROM processes WHERE pid = ${process.pid}`);
  });

  test("tables come from osquery_registry, so pack queries on osquery-only tables can run", async () => {
    const tables = await engine.tables();
    expect(tables).toContain("osquery_info");
    expect(tables).toContain("processes");
    expect((await engine.query("select * from osquery_info")).rows).toEqual([
      { version: "5.12.0", pid: "1" },
    ]);
  });

  test("osqueryd's errors keep their meaning", async () => {
    const code = async (sql: string) => {
      try {
        await engine.query(sql);
        return "ok";
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    expect(await code("select * from launchd")).toBe("HND_QUERY_UNKNOWN_TABLE");
    expect(await code("select nosuch from uptime")).toBe("HND_QUERY_SQL");
    // Refused before it reaches osqueryd.
    expect(await code("attach database '/tmp/x' as x")).toBe("HND_QUERY_REFUSED");
  });

  test("a silent osqueryd times out, and the engine reconnects afterwards", async () => {
    const slow = new OsquerydEngine(fake.socket, { timeoutMs: 200 });
    fake.stall = true;
    try {
      await expect(slow.query("select 1 as x")).rejects.toMatchObject({
        code: "HND_QUERY_OSQUERYD_UNAVAILABLE",
      });
    } finally {
      fake.stall = false;
    }
    expect((await slow.query("select 1 as x")).rows).toEqual([{ x: "1" }]);
    await slow.close();
  });

  test("no osqueryd at the socket is reported as unavailable", async () => {
    const none = new OsquerydEngine(join(dir, "missing.em"), { timeoutMs: 500 });
    await expect(none.query("select 1")).rejects.toMatchObject({ code: "HND_QUERY_OSQUERYD_UNAVAILABLE" });
  });
});
