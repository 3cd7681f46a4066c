/**
 * The supervisor side of the pipeline: pull from the handler's outbox, write
 * to the file and data-lake sinks, acknowledge — including a supervisor
 * "crash" between the sink writes and the acknowledgement.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../core/config.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { MetricsRegistry } from "../../core/metrics.ts";
import { startLakeReceiver } from "../../plugins/sinks/lake-receiver.ts";
import { RotatingFileSink } from "../../plugins/sinks/results-file.ts";
import { HttpLakeSink } from "../../plugins/sinks/results-http.ts";
import { createScheduledQueryPackHandler, type Loaded } from "./index.ts";
import { ResultsService, settingsFromConfig, sinksFromConfig } from "./service.ts";
import { defaultSettings, settingsHash } from "./settings.ts";
import { capsFor, pack, viewOf } from "./testutil.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-service-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let clock = Date.parse("2025-03-01T00:00:00Z");
const handler = createScheduledQueryPackHandler({
  now: () => clock,
  timers: { setTimeout: () => 0, clearTimeout: () => {} },
}) as ContentHandler<Loaded>;

async function loadedHandler() {
  const { caps } = capsFor(handler as ContentHandler<unknown>);
  const view = viewOf({
    "packs/p.conf": pack({
      users: { query: "select username, uid from users", interval: 10 },
      os: { query: "select name from os_version", interval: 10, snapshot: true },
    }),
  });
  return handler.load(view, caps);
}

describe("ResultsService", () => {
  test("moves result lines to every sink exactly once, even when the ack is lost", async () => {
    const l = await loadedHandler();
    const lake = await startLakeReceiver({ dir: join(root, "lake") });
    const file = join(root, "results.log");
    const http = new HttpLakeSink({ url: lake.url, dir: join(root, "queue"), minBackoffMs: 5 }).start();
    let loseAck = true;
    const calls: string[] = [];
    const api = {
      async call(_type: string, method: string, args: unknown) {
        calls.push(method);
        if (method === "ack" && loseAck) {
          loseAck = false;
          throw new Error("supervisor died before the ack");
        }
        return handler.call!(l, method, args);
      },
    };
    const service = new ResultsService({
      api,
      settings: defaultSettings(),
      sinks: [new RotatingFileSink({ path: file }), http],
      batchLines: 1000,
      metrics: new MetricsRegistry(),
    });
    try {
      clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
      await l.scheduler.runDue();
      const produced = l.host.outbox.pending;
      expect(produced).toBeGreaterThan(1);
      await expect(service.pumpOnce({ drain: true })).rejects.toThrow("before the ack");
      // The lines were written but not acknowledged: the next round offers them again.
      expect(l.host.outbox.pending).toBe(produced);
      expect((await service.pumpOnce({ drain: true })).moved).toBe(produced);
      expect(l.host.outbox.pending).toBe(0);
      expect(await http.flush(5000)).toBe(true);
      const fileLines = readFileSync(file, "utf8").split("\n").filter(Boolean);
      expect(fileLines).toHaveLength(produced);
      expect(lake.lines()).toEqual(fileLines);
      expect(lake.stats().lines).toBe(produced);
      // The outbox had default settings already; no configure was needed.
      expect(calls).not.toContain("configure");
    } finally {
      await service.stop();
      await handler.unload!(l);
      await lake.stop();
    }
  });

  test("holds small batches back until they are due, and reconfigures a host that drifted", async () => {
    const l = await loadedHandler();
    const calls: { method: string; args: unknown }[] = [];
    const api = {
      call: async (_t: string, method: string, args: unknown) => {
        calls.push({ method, args });
        return handler.call!(l, method, args);
      },
    };
    const settings = { ...defaultSettings(), hostIdentifier: "edge-42" };
    const service = new ResultsService({
      api,
      settings,
      sinks: [],
      batchLines: 1000,
      flushMs: 60_000,
      metrics: new MetricsRegistry(),
    });
    try {
      clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
      await l.scheduler.runDue();
      // Fewer than a batch, and younger than flushMs: nothing moves yet.
      expect((await service.pumpOnce()).moved).toBe(0);
      expect(calls.some((c) => c.method === "configure")).toBe(true);
      expect(handler.status!(l).settingsHash).toBe(settingsHash(settings));
      clock += 60_000;
      expect((await service.pumpOnce()).moved).toBeGreaterThan(0);
    } finally {
      await service.stop();
      await handler.unload!(l);
    }
  });

  test("mirrors per-query telemetry into Prometheus counters without double counting", async () => {
    const l = await loadedHandler();
    const registry = new MetricsRegistry();
    const api = { call: async (_t: string, method: string, args: unknown) => handler.call!(l, method, args) };
    const service = new ResultsService({ api, settings: defaultSettings(), sinks: [], metrics: registry });
    try {
      clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
      await l.scheduler.runDue();
      await service.refreshMetrics();
      await service.refreshMetrics();
      const users = Number(
        readFileSync("/etc/passwd", "utf8")
          .split("\n")
          .filter((x) => x && !x.startsWith("#")).length,
      );
      let text = registry.render();
      expect(text).toContain('outpost_query_runs_total{query="pack_p_users"} 1');
      expect(text).toContain(`outpost_query_rows_total{query="pack_p_users"} ${users}`);
      expect(text).toContain('outpost_query_denylisted{query="pack_p_users"} 0');
      clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
      await l.scheduler.runDue();
      await service.refreshMetrics();
      text = registry.render();
      expect(text).toContain('outpost_query_runs_total{query="pack_p_users"} 2');
    } finally {
      await service.stop();
      await handler.unload!(l);
    }
  });
});

describe("from the agent config", () => {
  test("settings and sinks follow the query section", () => {
    const config = parseConfig({
      stateDir: join(root, "state"),
      query: {
        engine: "osqueryd",
        hostIdentifier: "h1",
        watchdog: { memoryMb: 300 },
        results: { http: { url: "http://127.0.0.1:9/v1/results", token: "abcdefghij" } },
      },
    });
    const s = settingsFromConfig(config.query);
    expect(s).toMatchObject({
      engine: "osqueryd",
      hostIdentifier: "h1",
      watchdog: { memoryMb: 300, cpuPercent: 10 },
    });
    const sinks = sinksFromConfig(config);
    expect(sinks.map((x) => x.name)).toEqual([
      `file:${join(root, "state", "query-results", "results.log")}`,
      "http:http://127.0.0.1:9/v1/results",
    ]);
    return Promise.all(sinks.map((x) => x.close()));
  });
});
