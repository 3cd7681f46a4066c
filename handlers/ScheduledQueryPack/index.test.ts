/**
 * The ScheduledQueryPack handler end to end in one process: real packs,
 * the real worker and watchdog, a manual clock for the schedule.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { createScheduledQueryPackHandler, type Loaded } from "./index.ts";
import { capsFor, pack, type RecordedEvent, viewOf } from "./testutil.ts";

const FIXTURES = join(import.meta.dir, "testdata", "osquery-packs");
const SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
const noTimers = { setTimeout: () => 0, clearTimeout: () => {} };

let clock = Date.parse("2025-01-01T00:00:00Z");
const handler = createScheduledQueryPackHandler({
  now: () => clock,
  timers: noTimers,
  random: () => 0.5,
  runner: { checkMs: 50 },
}) as ContentHandler<Loaded>;
const loaded: Loaded[] = [];

async function load(files: Record<string, string>, opts: { workDir?: string; version?: number } = {}) {
  const view = viewOf(files, opts.version ?? 1);
  await handler.validate(view);
  const { caps, events, workDir } = capsFor(handler as ContentHandler<unknown>, opts.workDir);
  const l = await handler.load(view, caps);
  loaded.push(l);
  return { l, events, workDir };
}
const call = (l: Loaded, method: string, args: unknown = {}) =>
  handler.call!(l, method, args) as Promise<Record<string, unknown>>;

afterEach(async () => {
  for (const l of loaded.splice(0).reverse()) await handler.unload!(l);
});

describe("validate", () => {
  test("real osquery packs are accepted", async () => {
    const files: Record<string, string> = {};
    for (const f of ["incident-response", "it-compliance", "ossec-rootkit", "osquery-monitoring"])
      files[`packs/${f}.conf`] = readFileSync(join(FIXTURES, `${f}.conf`), "utf8");
    await handler.validate(viewOf(files));
  });

  test("statements that write, and SQL that cannot parse, reject the content", async () => {
    const bad = async (sql: string) =>
      handler.validate(viewOf({ "packs/p.conf": pack({ q: { query: sql } }) }));
    await expect(bad("attach database '/tmp/x' as x")).rejects.toThrow(
      "packs/p.conf: query q: query refused",
    );
    await expect(bad("select from where")).rejects.toThrow("syntax error");
    await expect(
      (async () =>
        handler.validate(viewOf({ "packs/p.conf": pack({}, { discovery: ["delete from users"] }) })))(),
    ).rejects.toMatchObject({ code: "HND_QUERY_PACK_INVALID" });
    // Tables the embedded engine lacks are reported at load, not fatal.
    await bad("select * from launchd");
  });
});

describe("load and report", () => {
  test("status and the pack report name skipped and unsupported queries", async () => {
    const { l } = await load({
      "packs/incident-response.conf": readFileSync(join(FIXTURES, "incident-response.conf"), "utf8"),
    });
    const status = handler.status!(l);
    expect(status).toMatchObject({ engine: "embedded", packs: 1, denylisted: [], outboxPending: 0 });
    const report = (await call(l, "packs")).packs as {
      scheduled: { name: string; unsupported?: string }[];
      skipped: { name: string; reason: string }[];
    }[];
    const ir = report[0]!;
    expect(ir.skipped).toContainEqual({
      name: "pack_incident-response_launchd",
      reason: "platform darwin (this host is linux)",
    });
    // Every Linux query of osquery's incident-response pack runs on the embedded engine (issue 22).
    expect(ir.scheduled.filter((q) => q.unsupported)).toEqual([]);
    expect(status.unsupported).toBe(0);
  });

  test("queries using a table or a function the engine lacks are marked unsupported at load and never run", async () => {
    const { l } = await load({
      "packs/p.conf": pack({
        table: { query: "select * from launchd" },
        fn: { query: "select carve(path) from file where path = '/etc/hosts'" },
        ok: { query: "select split('a,b', ',', 1) as b" },
      }),
    });
    const scheduled = (
      (await call(l, "packs")).packs as { scheduled: { name: string; unsupported?: string }[] }[]
    )[0]!.scheduled;
    expect(Object.fromEntries(scheduled.map((q) => [q.name, q.unsupported ?? null]))).toEqual({
      pack_p_table: "no such table: launchd (embedded engine)",
      pack_p_fn: "no such function: carve (embedded engine)",
      pack_p_ok: null,
    });
    expect(handler.status!(l).unsupported).toBe(2);
    expect(await call(l, "run", { name: "pack_p_fn" })).toMatchObject({
      status: "unsupported",
      error: { code: "HND_QUERY_UNKNOWN_FUNCTION" },
    });
    expect(await call(l, "run", { name: "pack_p_table" })).toMatchObject({
      status: "unsupported",
      error: { code: "HND_QUERY_UNKNOWN_TABLE" },
    });
    expect(await call(l, "run", { name: "pack_p_ok" })).toMatchObject({ status: "ok", rows: 1 });
  });
});

describe("schedule", () => {
  test("queries run on multiples of their splayed interval and log osquery differentials to the outbox", async () => {
    const { l } = await load({
      "packs/p.conf": pack({
        os: { query: "select name, platform from os_version", interval: 100 },
        up: { query: "select 1 as alive", interval: 100, snapshot: true },
      }),
    });
    const entry = l.scheduler.queries.find((e) => e.q.name === "os")!;
    // random() = 0.5 picks the middle of [90, 110].
    expect(entry.splayed).toBe(100);
    expect(entry.nextDue % (entry.splayed * 1000)).toBe(0);
    expect(await l.scheduler.runDue()).toEqual([]);
    clock = entry.nextDue;
    const first = await l.scheduler.runDue();
    expect(first.map((r) => [r.name, r.status, r.added])).toEqual([
      ["pack_p_os", "ok", 1],
      ["pack_p_up", "ok", 1],
    ]);
    clock += 100_000;
    const second = await l.scheduler.runDue();
    expect(second.map((r) => r.lines)).toEqual([0, 1]);
    const pulled = await call(l, "pull", { max: 100 });
    const lines = (pulled.lines as string[]).map((x) => JSON.parse(x));
    expect(lines.map((x) => [x.name, x.action ?? null, x.counter])).toEqual([
      ["pack_p_os", "added", 0],
      ["pack_p_up", "snapshot", 0],
      ["pack_p_up", "snapshot", 0],
    ]);
    expect(lines[0].hostIdentifier).toBeString();
    const ack = await call(l, "ack", { generation: pulled.generation, upTo: (pulled.first as number) + 2 });
    expect(ack.pending).toBe(0);
    const stats = await call(l, "stats");
    const os = (stats.queries as { name: string; runs: number; lastRows: number }[]).find(
      (q) => q.name === "pack_p_os",
    )!;
    expect(os).toMatchObject({ runs: 2, lastRows: 1 });
  });

  test("the splay is kept across loads while the interval stays the same", async () => {
    const files = { "packs/p.conf": pack({ q: { query: "select 1", interval: 1000 } }) };
    const a = await load(files);
    const splayed = a.l.scheduler.queries[0]!.splayed;
    await handler.unload!(loaded.pop()!);
    const b = await load(files, { workDir: a.workDir });
    expect(b.l.scheduler.queries[0]!.splayed).toBe(splayed);
  });

  test("discovery queries gate a pack", async () => {
    const { l } = await load({
      "packs/on.conf": pack(
        { q: { query: "select 1", interval: 10 } },
        { discovery: [`select pid from processes where pid = ${process.pid}`] },
      ),
      "packs/off.conf": pack(
        { q: { query: "select 1", interval: 10 } },
        { discovery: ["select pid from processes where pid = -5"] },
      ),
    });
    clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
    const reports = await l.scheduler.runDue();
    expect(reports.find((r) => r.name === "pack_on_q")?.status).toBe("ok");
    expect(reports.find((r) => r.name === "pack_off_q")).toMatchObject({ status: "inactive" });
    expect(handler.status!(l).inactivePacks).toEqual(["off"]);
  });
});

describe("watchdog in the schedule", () => {
  const runawayPack = pack({
    runaway: { query: SPIN, interval: 60, watchdog: { wallSeconds: 0.3 } },
    tolerated: { query: SPIN, interval: 60, denylist: false, watchdog: { wallSeconds: 0.3 } },
    fine: { query: "select 1 as ok", interval: 60 },
  });

  test("a runaway query is killed and denylisted for 24 h, with the reason in status, stats and events", async () => {
    const { l, events } = await load({ "packs/r.conf": runawayPack });
    clock = Math.max(...l.scheduler.queries.map((e) => e.nextDue));
    const reports = await l.scheduler.runDue();
    expect(reports.map((r) => [r.name, r.status])).toEqual([
      ["pack_r_fine", "ok"],
      ["pack_r_runaway", "killed"],
      ["pack_r_tolerated", "killed"],
    ]);
    const status = handler.status!(l);
    expect(status.denylisted).toEqual([
      {
        name: "pack_r_runaway",
        until: new Date(clock + 86_400_000).toISOString(),
        reason: expect.stringMatching(/^watchdog: wall limit 0\.3 s exceeded \(0\.\d s\)$/),
      },
    ]);
    expect(status.watchdogKills).toBe(2);
    const kills = events.filter((e: RecordedEvent) => e.type === "query-watchdog-kill");
    expect(kills.map((e) => [e.query, e.reason, e.denylistedUntil !== null])).toEqual([
      ["pack_r_runaway", "wall", true],
      ["pack_r_tolerated", "wall", false],
    ]);
    const stats = (await call(l, "stats")).queries as {
      name: string;
      watchdogKills: number;
      denylistReason: string | null;
    }[];
    expect(stats.find((q) => q.name === "pack_r_runaway")).toMatchObject({
      watchdogKills: 1,
      denylistReason: expect.stringContaining("wall"),
    });
    // lastKill.at is when the watchdog killed it (start + the wall time it had run), not when it started.
    const runaway = stats.find((q) => q.name === "pack_r_runaway") as unknown as {
      lastRunAt: string;
      lastKill: { at: string };
    };
    const killedAfterMs = Date.parse(runaway.lastKill.at) - Date.parse(runaway.lastRunAt);
    expect(killedAfterMs).toBeGreaterThanOrEqual(300);
    expect(killedAfterMs).toBeLessThan(10_000);

    // Next interval: the denylisted query is skipped, the tolerated one is tried again.
    clock += 60_000;
    const next = await l.scheduler.runDue();
    expect(next.find((r) => r.name === "pack_r_runaway")?.status).toBe("denylisted");
    expect(next.find((r) => r.name === "pack_r_tolerated")?.status).toBe("killed");

    // 24 h later it runs again.
    clock += 86_400_000;
    const later = await l.scheduler.runDue();
    expect(later.find((r) => r.name === "pack_r_runaway")?.status).toBe("killed");
    // An administrator can lift the denylist.
    expect(await call(l, "undeny", { name: "pack_r_runaway" })).toEqual({
      name: "pack_r_runaway",
      removed: true,
    });
  });

  test("a query that was running when the host died is denylisted when the host comes back", async () => {
    const { l, workDir } = await load({ "packs/r.conf": runawayPack });
    // What the scheduler records before every run; a dead host never clears it.
    l.host.markExecuting("pack_r_fine", "select 1 as ok", true);
    await handler.unload!(loaded.pop()!);
    const again = await load({ "packs/r.conf": runawayPack }, { workDir });
    expect(handler.status!(again.l).denylisted).toEqual([
      expect.objectContaining({
        name: "pack_r_fine",
        reason: expect.stringContaining("stopped while this query ran"),
      }),
    ]);
    expect(again.events.find((e) => e.type === "query-denylisted")).toMatchObject({
      query: "pack_r_fine",
      reason: "crash",
    });
  });
});

describe("content switch", () => {
  test("the newest loaded pack schedules; discarding it resumes the previous one", async () => {
    const v1 = await load({ "packs/p.conf": pack({ a: { query: "select 1", interval: 10 } }) });
    const v2 = await load(
      { "packs/p.conf": pack({ b: { query: "select 2", interval: 10 } }) },
      { workDir: v1.workDir, version: 2 },
    );
    expect(v2.l.host).toBe(v1.l.host);
    clock = Math.max(...[...v1.l.scheduler.queries, ...v2.l.scheduler.queries].map((e) => e.nextDue));
    expect(await v1.l.scheduler.runDue()).toEqual([]);
    expect((await v2.l.scheduler.runDue()).map((r) => r.name)).toEqual(["pack_p_b"]);
    // v2 discarded (e.g. the store commit failed): v1 resumes.
    await handler.unload!(loaded.pop()!);
    clock += 20_000;
    expect((await v1.l.scheduler.runDue()).map((r) => r.name)).toEqual(["pack_p_a"]);
  });
});

describe("API", () => {
  test("ad-hoc queries run under the watchdog", async () => {
    const { l, events } = await load({ "packs/p.conf": pack({}) });
    const r = await call(l, "query", { sql: `select pid, name from processes where pid = ${process.pid}` });
    expect(r).toMatchObject({ engine: "embedded", columns: ["pid", "name"], rowCount: 1, truncated: false });
    await expect(call(l, "query", { sql: "select * from launchd" })).rejects.toMatchObject({
      code: "HND_QUERY_UNKNOWN_TABLE",
    });
    await expect(call(l, "query", {})).rejects.toMatchObject({ code: "HND_QUERY_BAD_ARGS" });
    await call(l, "configure", { watchdog: { wallSeconds: 0.3 } });
    await expect(call(l, "query", { sql: SPIN })).rejects.toMatchObject({ code: "HND_QUERY_WATCHDOG" });
    expect(events.find((e) => e.type === "query-watchdog-kill")).toMatchObject({
      query: "(ad hoc)",
      reason: "wall",
    });
  });

  test("configure validates, persists and reports the settings hash", async () => {
    const { l, workDir } = await load({ "packs/p.conf": pack({ q: { query: "select 1", interval: 10 } }) });
    const before = handler.status!(l).settingsHash;
    const r = await call(l, "configure", { hostIdentifier: "edge-7", eventFormat: false });
    expect(r.changed).toBe(true);
    expect(r.settingsHash).not.toBe(before);
    await expect(call(l, "configure", { engine: "nope" })).rejects.toMatchObject({
      code: "HND_QUERY_BAD_ARGS",
    });
    await handler.unload!(loaded.pop()!);
    const again = await load(
      { "packs/p.conf": pack({ q: { query: "select 1", interval: 10 } }) },
      { workDir },
    );
    expect(handler.status!(again.l).settingsHash).toBe(r.settingsHash as string);
  });

  test("run executes one scheduled query now; unknown names and methods are errors", async () => {
    const { l } = await load({
      "packs/p.conf": pack({ q: { query: "select 42 as answer", interval: 3600 } }),
    });
    expect(await call(l, "run", { name: "pack_p_q" })).toMatchObject({ status: "ok", rows: 1, added: 1 });
    await expect(call(l, "run", { name: "nope" })).rejects.toMatchObject({ code: "HND_QUERY_UNKNOWN_QUERY" });
    await expect(call(l, "frobnicate")).rejects.toMatchObject({ code: "HND_UNKNOWN_METHOD" });
  });
});
