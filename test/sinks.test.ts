/**
 * Sinks compose, end to end: a real agent runs a signed ScheduledQueryPack
 * and its results service ships every line to the rotating file, a real
 * PostgreSQL cluster, a real ClickHouse server and a real rsyslogd (RELP)
 * at once, each through its own queue; `events.sinks` carries the agent's
 * own events to rsyslogd. Count check: every store holds exactly the lines
 * the file holds, once; /v1/queries/stats and `agent query --stats --json`
 * report per-sink `sent` and `dropped`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../core/config.ts";
import { type ControlPlane, startControlPlane } from "../core/control/server.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { builtinGroups } from "../handlers/groups.ts";
import { scheduledQueryPackHandler } from "../handlers/ScheduledQueryPack/index.ts";
import { queryExtensions, queryServices } from "../handlers/ScheduledQueryPack/wiring.ts";
import { eventSinkServices } from "../plugins/sinks/events-service.ts";
import {
  type ClickHouse,
  haveClickHouse,
  havePostgres,
  haveRsyslog,
  type Postgres,
  type Rsyslog,
  startClickHouse,
  startPostgres,
  startRsyslog,
  waitFor,
} from "../plugins/sinks/testutil/servers.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "./fixtures/vendor.ts";

const PACK = {
  queries: { me: { query: "SELECT pid, name FROM processes WHERE pid = 1", interval: 1, snapshot: true } },
};
const ready = havePostgres && haveClickHouse && haveRsyslog;

let vendor: Vendor;
let ta: TestAgent;
let plane: ControlPlane;
let pg: Postgres;
let ch: ClickHouse;
let rs: Rsyslog;
let services: { start(): void | Promise<void>; stop(): Promise<void>; name: string }[] = [];
const tmp = mkdtempSync(join(tmpdir(), "outpost-sinks-e2e-"));

describe.skipIf(!ready)("sinks compose end to end", () => {
  beforeAll(async () => {
    [pg, ch, rs] = await Promise.all([startPostgres(), startClickHouse(), startRsyslog()]);
    vendor = await makeVendor();
    await vendor.release("ScheduledQueryPack", 1, { "packs/demo.conf": JSON.stringify(PACK) });
    const configInput = {
      query: {
        hostIdentifier: "e2e-host",
        results: {
          flushSeconds: 0.2,
          postgres: { url: pg.url, table: "results" },
          clickhouse: { url: ch.url, database: "outpost", table: "results" },
          syslog: { address: `127.0.0.1:${rs.port}`, facility: "local4" },
        },
      },
      events: { sinks: { syslog: { host: "127.0.0.1", port: rs.port, facility: "local5" } } },
    };
    ta = await startAgent(vendor, {
      config: configInput,
      registry: () => {
        const r = new HandlerRegistry();
        for (const g of builtinGroups) r.registerGroup(g);
        return r.register(scheduledQueryPackHandler);
      },
    });
    const config = parseConfig({ ...configInput, stateDir: ta.stateDir });
    services = [
      ...queryServices({ api: ta.agent, config, events: ta.agent.events }),
      ...eventSinkServices({ api: ta.agent, config, events: ta.agent.events }),
    ];
    for (const s of services) await s.start();
    const report = await ta.agent.update();
    expect(report.installed.map((i) => i.type)).toEqual(["ScheduledQueryPack"]);
    plane = await startControlPlane({
      api: ta.agent,
      stateDir: ta.stateDir,
      extensions: queryExtensions(),
      events: ta.agent.events,
    });
  }, 180_000);

  afterAll(async () => {
    for (const s of services) await s.stop().catch(() => {});
    await plane?.stop();
    await ta?.stop();
    pg?.destroy();
    await ch?.destroy();
    await rs?.destroy();
    vendor?.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("every store holds the file sink's lines exactly once; stats report sent and dropped per sink", async () => {
    // A few scheduled runs' worth of rows in PostgreSQL, then stop: the services drain and close their sinks.
    await waitFor(
      "rows in PostgreSQL",
      async () => {
        const [r] = await pg.query("SELECT count(*)::int AS n FROM results").catch(() => [{ n: 0 }]);
        return Number(r?.n) >= 3;
      },
      60_000,
    );
    const res = await fetch(`${plane.url}/v1/queries/stats`, {
      headers: { authorization: `Bearer ${plane.token}` },
    });
    const live = (await res.json()) as {
      delivery: { sinks: { kind: string; sent: number; dropped: number }[] };
    };
    expect(live.delivery.sinks.map((s) => s.kind).sort()).toEqual([
      "clickhouse",
      "file",
      "postgres",
      "syslog",
    ]);
    for (const s of live.delivery.sinks) expect(s).toMatchObject({ dropped: 0, sent: expect.any(Number) });
    // /metrics carries each sink's own series (refreshed by the stats request above).
    const metrics = await (
      await fetch(`${plane.url}/metrics`, { headers: { authorization: `Bearer ${plane.token}` } })
    ).text();
    for (const sink of [
      "postgres:results",
      "clickhouse:outpost.results",
      `syslog:relp://127.0.0.1:${rs.port}`,
    ]) {
      expect(metrics).toContain(`outpost_query_sink_queued_lines{sink="${sink}"}`);
      expect(metrics).toContain(`outpost_query_results_lines_total{outcome="delivered",sink="${sink}"}`);
    }
    for (const s of services) await s.stop();
    services = [];

    const file = readFileSync(join(ta.stateDir, "query-results", "results.log"), "utf8")
      .trim()
      .split("\n");
    const n = file.length;
    expect(n).toBeGreaterThanOrEqual(3);
    const [p] = await pg.query(
      "SELECT count(*)::int AS n, count(DISTINCT batch_key || ':' || row_seq)::int AS u FROM results",
    );
    expect(Number(p!.n)).toBe(n);
    expect(Number(p!.u)).toBe(n);
    // Without FINAL: stored once at insert time.
    expect(
      (await ch.query("SELECT count(), uniqExact(batch_key, row_seq) FROM outpost.results")).trim(),
    ).toBe(`${n}\t${n}`);
    await waitFor("syslog lines", () => rs.lines().filter((l) => l.startsWith("<166>")).length >= n);
    const sys = rs.lines().filter((l) => l.startsWith("<166>"));
    const keys = sys.map((l) => /key="([^"]+)" seq="(\d+)"/.exec(l)!.slice(1).join("/"));
    expect(new Set(keys).size).toBe(n);
    expect(sys.length).toBe(n);

    // Agent events went to rsyslogd as local5 (PRI 174) with action = event type.
    const events = rs.lines().filter((l) => l.startsWith("<174>"));
    expect(events.some((l) => l.includes('"action":"content-installed"'))).toBe(true);

    // The CLI contract: per-sink lifetime sent / dropped, read from the queue directories (offline here:
    // the in-process agent lets go of its state dir first).
    await plane.stop();
    await ta.stop();
    const cli = Bun.spawnSync(
      [
        process.execPath,
        join(import.meta.dir, "..", "bin", "agent-main.ts"),
        "query",
        "--stats",
        "--json",
        "--state",
        ta.stateDir,
      ],
      { stderr: "pipe", timeout: 60_000 },
    );
    if (cli.exitCode !== 0)
      throw new Error(`agent query --stats failed: ${cli.stdout.toString()} ${cli.stderr.toString()}`);
    const out = JSON.parse(cli.stdout.toString()) as {
      sinks: { kind: string; sent: number; dropped: number; queued?: number }[];
      eventSinks: { kind: string; sent: number; dropped: number }[];
    };
    // Stopping aborts a batch still in flight (shutdown never waits on a slow store): its rows may be
    // stored and yet not acknowledged — they stay queued and are sent again (idempotently) at the next
    // start. So every line is sent or still queued, none dropped.
    expect(Object.fromEntries(out.sinks.map((s) => [s.kind, [s.sent + (s.queued ?? 0), s.dropped]]))).toEqual(
      {
        postgres: [n, 0],
        clickhouse: [n, 0],
        syslog: [n, 0],
      },
    );
    expect(out.eventSinks[0]).toMatchObject({ kind: "syslog", dropped: 0 });
    expect(out.eventSinks[0]!.sent).toBe(events.length);
  }, 180_000);
});
