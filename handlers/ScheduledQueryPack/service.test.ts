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
import {
  pullDelayMs,
  ResultsService,
  settingsFromConfig,
  sinksFromConfig,
  type WakeSource,
  wakesPump,
} from "./service.ts";
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

describe("when the pump pulls: quietMs instead of a fixed clock", () => {
  const pull = (l: Loaded, args: Record<string, unknown>) =>
    handler.call!(l, "pull", args) as Promise<{ lines: string[]; pending: number; quietMs: number }>;

  test("the host says how long its outbox will have nothing to deliver; a run in flight makes it 0", async () => {
    const l = await loadedHandler();
    const flushMs = 2000;
    const asked = { minLines: 5000, maxWaitMs: flushMs };
    try {
      const next = Math.min(...l.scheduler.queries.map((e) => e.nextDue));
      clock = next - 7000;
      // Nothing pending: no line before the next run starts, and its lines are held flushMs.
      expect((await pull(l, asked)).quietMs).toBe(7000 + flushMs);
      // A run in flight (runNow here; the scheduler's own runs alike): lines may come at any moment.
      const run = l.scheduler.runNow(l.scheduler.queries[0]!.q.logName)!;
      expect(l.scheduler.msUntilNextRun()).toBe(0);
      await run;
      expect(l.scheduler.msUntilNextRun()).toBe(7000);
      // Its lines are held back until the oldest has waited flushMs.
      clock += 500;
      const held = await pull(l, asked);
      expect(held.lines).toEqual([]);
      expect(held.quietMs).toBe(flushMs - 500);
      clock += flushMs - 500;
      // A cap that leaves lines behind: the rest are deliverable now.
      const capped = await pull(l, { ...asked, max: 1 });
      expect(capped.lines).toHaveLength(1);
      expect(capped.pending).toBeGreaterThan(1);
      expect(capped.quietMs).toBe(0);
      // Everything handed over: quiet until the next scheduled run's lines can be due.
      const all = await pull(l, asked);
      expect(all.lines.length).toBe(all.pending);
      expect(all.quietMs).toBe(next - clock + flushMs);
    } finally {
      await handler.unload!(l);
    }
  });

  test("per-query stats are asked for only when a run has ended since they were last mirrored", async () => {
    const l = await loadedHandler();
    const methods: string[] = [];
    const api = {
      call: async (_t: string, method: string, args: unknown) => {
        methods.push(method);
        return handler.call!(l, method, args);
      },
    };
    const registry = new MetricsRegistry();
    const service = new ResultsService({ api, settings: defaultSettings(), sinks: [], metrics: registry });
    const asked = () => methods.filter((m) => m === "stats").length;
    try {
      // Nothing known yet (no pull): it asks.
      await service.refreshMetricsIfChanged();
      expect(asked()).toBe(1);
      // The first pull tells where the host stands: asked once more, then not while nothing runs.
      await service.pumpOnce();
      await service.refreshMetricsIfChanged();
      await service.refreshMetricsIfChanged();
      await service.refreshMetricsIfChanged();
      expect(asked()).toBe(2);
      // Runs end in the host; the next pull shows it, and the next round mirrors them.
      clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
      await l.scheduler.runDue();
      await service.pumpOnce();
      await service.refreshMetricsIfChanged();
      expect(asked()).toBe(3);
      expect(registry.render()).toContain('outpost_query_runs_total{query="pack_p_users"} 1');
      await service.refreshMetricsIfChanged();
      expect(asked()).toBe(3);
    } finally {
      await service.stop();
      await handler.unload!(l);
    }
  });

  test("the pump sleeps on it: at least flushMs with nothing pending, at most maxIdleMs", () => {
    const o = { flushMs: 2000, maxIdleMs: 30_000, batchLines: 5000 };
    expect(pullDelayMs({ moved: 5000, pending: 9000, quietMs: 0 }, o)).toBe(0);
    expect(pullDelayMs({ moved: 0, pending: 0 }, o)).toBe(2000);
    expect(pullDelayMs({ moved: 0, pending: 0, quietMs: 500 }, o)).toBe(2000);
    expect(pullDelayMs({ moved: 12, pending: 0, quietMs: 12_000 }, o)).toBe(12_000);
    expect(pullDelayMs({ moved: 0, pending: 0, quietMs: 3_600_000 }, o)).toBe(30_000);
    expect(pullDelayMs({ moved: 0, pending: 3, quietMs: 150 }, o)).toBe(150);
  });

  test("new query content and a new query host wake it; other groups' events do not", async () => {
    expect(wakesPump({ type: "content-installed", contentType: "ScheduledQueryPack" })).toBe(true);
    expect(wakesPump({ type: "content-rolled-back", contentType: "ScheduledQueryPack" })).toBe(true);
    expect(wakesPump({ type: "host-restarted", group: "query" })).toBe(true);
    expect(wakesPump({ type: "host-started", group: "query" })).toBe(true);
    expect(wakesPump({ type: "host-restarted", group: "scanner" })).toBe(false);
    expect(wakesPump({ type: "content-installed", contentType: "Behavior" })).toBe(false);

    // The loop itself: a host that says "nothing for an hour" leaves the pump asleep until an event.
    const subscribers = new Set<(e: { type: string; [k: string]: unknown }) => void>();
    const wakeOn: WakeSource = {
      subscribe(fn) {
        subscribers.add(fn);
        return () => subscribers.delete(fn);
      },
    };
    const emit = (e: { type: string; [k: string]: unknown }) => {
      for (const fn of subscribers) fn(e);
    };
    const settings = defaultSettings();
    let pulls = 0;
    let onPull = () => {};
    const api = {
      async call(_t: string, method: string) {
        if (method !== "pull") return { queries: [], outbox: { pending: 0 } };
        pulls++;
        onPull();
        return {
          settingsHash: settingsHash(settings),
          configured: true,
          generation: "g",
          first: 1,
          lines: [],
          pending: 0,
          quietMs: 3_600_000,
        };
      },
    };
    const pulled = (n: number) =>
      new Promise<void>((resolve) => {
        onPull = () => pulls >= n && resolve();
        if (pulls >= n) resolve();
      });
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    const service = new ResultsService({
      api,
      settings,
      sinks: [],
      flushMs: 10,
      maxIdleMs: 3_600_000,
      wakeOn,
      metrics: new MetricsRegistry(),
    }).start();
    try {
      await pulled(1);
      emit({ type: "host-restarted", group: "scanner" });
      await turn();
      await turn();
      expect(pulls).toBe(1);
      emit({ type: "host-restarted", group: "query" });
      await pulled(2);
      expect(pulls).toBe(2);
    } finally {
      await service.stop();
    }
    expect(subscribers.size).toBe(0);
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
