/**
 * The scheduler and the health verdict as pure functions: made-up fleets,
 * made-up clocks, every rule (S1-S6, the sample and threshold rules).
 */
import { describe, expect, test } from "bun:test";
import { parseReleaseConfig } from "./config.ts";
import { type FleetAgent, type GroupHealth, groupHealth, judge } from "./health.ts";
import { type HealthSnapshot, plan } from "./plan.ts";
import type { Release, ReleaseState } from "./state.ts";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

const config = parseReleaseConfig({
  repo: "/r",
  keys: "/k",
  groups: [
    { name: "eng-test", promote: "manual", soakMinutes: 60 },
    { name: "internal", promote: "manual", soakMinutes: 60 },
    { name: "public-1", promote: "manual", soakMinutes: 120 },
    { name: "public-2", promote: "auto", soakMinutes: 120 },
    { name: "public-3", promote: "auto", soakMinutes: 240 },
  ],
  health: { threshold: 0.005, minSample: 50, minAdoption: 0.5 },
});

function release(published: Record<string, number>, extra: Partial<Release> = {}): Release {
  return {
    id: "T-5",
    type: "T",
    version: 5,
    package: { file: "packages/T/T-5-x.tar", sha384: "a".repeat(96), size: 10, signingTime: iso(T0) },
    status: "active",
    startedAt: iso(T0),
    finishedAt: null,
    groups: config.groups.map((g) => ({
      name: g.name,
      ...(g.name in published ? { before: null } : {}),
      publishedAt: g.name in published ? iso(published[g.name]!) : null,
      revertedAt: null,
    })),
    abort: null,
    log: [],
    health: [],
    ...extra,
  };
}

const state = (...releases: Release[]): ReleaseState => ({ schema: 1, releases });
const h = (group: string, agents: number, exposed: number, affected: number): GroupHealth => ({
  group,
  agents,
  reporting: exposed,
  exposed,
  adopted: exposed - affected,
  affected,
});
const healthy = (...groups: string[]): HealthSnapshot => ({
  "T-5": Object.fromEntries(groups.map((g) => [g, h(g, 1000, 900, 1)])),
});

describe("judge", () => {
  const rules = { threshold: 0.005, minSample: 200, minAdoption: 0.5 };
  test("needs the minimum sample (or the whole group if smaller) before calling a group healthy", () => {
    expect(judge(h("g", 1000, 150, 0), rules).verdict).toBe("waiting");
    expect(judge(h("g", 300, 200, 0), rules).verdict).toBe("healthy");
    expect(judge(h("g", 20, 20, 0), rules)).toMatchObject({ verdict: "healthy", required: 20 });
    expect(judge(h("g", 0, 0, 0), rules).verdict).toBe("no-data");
  });

  test("the threshold: more than 0.5 % of exposed agents affected is unhealthy; exactly 0.5 % is not", () => {
    expect(judge(h("g", 1500, 1000, 5), rules).verdict).toBe("healthy");
    expect(judge(h("g", 1500, 1000, 6), rules).verdict).toBe("unhealthy");
  });

  test("trouble that exceeds the threshold of the whole minimum sample aborts before the sample fills", () => {
    expect(judge(h("g", 1000, 30, 1), rules).verdict).toBe("waiting"); // 1/200 = 0.5 %: not yet
    expect(judge(h("g", 1000, 30, 2), rules).verdict).toBe("unhealthy"); // 2/200 = 1 %
    expect(judge(h("g", 20, 3, 1), rules).verdict).toBe("unhealthy"); // small group: 1/20
  });

  test("enough exposed agents but low adoption waits", () => {
    expect(judge(h("g", 1000, 300, 0), rules)).toMatchObject({ verdict: "waiting" });
    expect(judge(h("g", 1000, 300, 0), rules).reason).toContain("adoption");
  });
});

describe("groupHealth", () => {
  const agent = (
    id: string,
    group: string,
    at: number,
    c: Partial<FleetAgent["content"][string]>,
    health: FleetAgent["health"] = "green",
  ): FleetAgent => ({
    id,
    tenant: "t",
    group,
    receivedAt: at,
    health,
    rejected: 0,
    content: { T: { version: 4, bad: [], crashes: 0, rolledBackFrom: [], state: "loaded", ...c } },
  });
  test("counts active, reporting-since, exposed and affected agents of one group", () => {
    const since = T0 + 10 * MIN;
    const fleet = [
      agent("a", "g", T0 + 20 * MIN, { version: 5 }),
      agent("b", "g", T0 + 20 * MIN, { version: 4, bad: [5], rolledBackFrom: [5] }),
      agent("c", "g", T0 + 20 * MIN, { version: 5, crashes: 2 }),
      agent("d", "g", T0 + 20 * MIN, { version: 5 }, "red"),
      agent("e", "g", T0 + 20 * MIN, { version: 4 }),
      agent("f", "g", T0 + 5 * MIN, { version: 4 }),
      agent("old", "g", T0 - 600 * MIN, { version: 5, crashes: 9 }),
      agent("x", "other", T0 + 20 * MIN, { version: 5, crashes: 9 }),
    ];
    const got = groupHealth(fleet, {
      type: "T",
      version: 5,
      group: "g",
      since,
      now: T0 + 30 * MIN,
      activeWindowMs: 180 * MIN,
    });
    expect(got).toMatchObject({
      group: "g",
      agents: 6,
      reporting: 5,
      exposed: 4,
      adopted: 3,
      affected: 3,
      installed: 4,
    });
  });
});

describe("plan", () => {
  const now = (m: number) => new Date(T0 + m * MIN);

  test("S4: manual gates wait for an operator, whatever the health", () => {
    const p = plan(state(release({ "eng-test": T0 })), config, now(600), healthy("eng-test"));
    expect(p.actions).toEqual([]);
    expect(p.notes[0]?.text).toContain("awaiting manual promotion to internal");
  });

  test("S3: after the manual gates, the next group follows once soaked and healthy", () => {
    const r = release({ "eng-test": T0, internal: T0 + 60 * MIN, "public-1": T0 + 120 * MIN });
    expect(plan(state(r), config, now(200), healthy("eng-test", "internal", "public-1")).actions).toEqual([]);
    expect(
      plan(state(r), config, now(200), healthy("eng-test", "internal", "public-1")).notes[0]?.text,
    ).toContain("soaking in public-1");
    const p = plan(state(r), config, now(240), healthy("eng-test", "internal", "public-1"));
    expect(p.actions).toEqual([
      expect.objectContaining({ kind: "promote", release: "T-5", group: "public-2" }),
    ]);
  });

  test("S3: a soaked group that is not yet judged healthy holds the release", () => {
    const r = release({ "eng-test": T0, internal: T0, "public-1": T0 });
    const snap: HealthSnapshot = {
      "T-5": {
        "eng-test": h("eng-test", 10, 10, 0),
        internal: h("internal", 100, 100, 0),
        "public-1": h("public-1", 1000, 20, 0),
      },
    };
    const p = plan(state(r), config, now(600), snap);
    expect(p.actions).toEqual([]);
    expect(p.notes[0]?.text).toContain("holding before public-2");
    const blind = plan(state(r), config, now(600), { "T-5": {} });
    expect(blind.actions).toEqual([]);
  });

  test("S1: any live group going unhealthy aborts, even during soak and even an earlier group", () => {
    const r = release({ "eng-test": T0, internal: T0 + 60 * MIN, "public-1": T0 + 120 * MIN });
    const snap = healthy("eng-test", "internal", "public-1");
    snap["T-5"]!.internal = h("internal", 200, 200, 3);
    const p = plan(state(r), config, now(130), snap);
    expect(p.actions).toEqual([
      { kind: "abort", release: "T-5", reason: expect.stringContaining("internal") },
    ]);
  });

  test("S5: the last group soaked and healthy completes the release", () => {
    const all = Object.fromEntries(config.groups.map((g) => [g.name, T0]));
    const r = release(all);
    expect(plan(state(r), config, now(100), healthy(...Object.keys(all))).actions).toEqual([]);
    expect(plan(state(r), config, now(240), healthy(...Object.keys(all))).actions).toEqual([
      expect.objectContaining({ kind: "complete", release: "T-5" }),
    ]);
  });

  test("S2: an interrupted publish (intent recorded, not done) is finished first", () => {
    const r = release({ "eng-test": T0 });
    r.groups[1]!.before = null;
    const p = plan(state(r), config, now(10), healthy("eng-test"));
    expect(p.actions).toEqual([expect.objectContaining({ kind: "promote", group: "internal" })]);
  });

  test("S6: an aborted release keeps reverting the groups it reached until each is done", () => {
    const r = release({ "eng-test": T0, internal: T0 }, { status: "aborted" });
    r.groups[0]!.revertedAt = iso(T0 + MIN);
    r.groups[2]!.before = null; // intent recorded, publish may or may not have happened
    const p = plan(state(r), config, now(10), {});
    expect(p.actions).toEqual([
      { kind: "revert", release: "T-5", group: "internal" },
      { kind: "revert", release: "T-5", group: "public-1" },
    ]);
  });

  test("completed releases and unknown groups are left alone; a group dropped from config is a manual gate", () => {
    const done = release({ "eng-test": T0 }, { status: "completed" });
    expect(plan(state(done), config, now(999), {})).toEqual({ actions: [], notes: [] });
    const r = release({ "eng-test": T0, internal: T0, "public-1": T0 });
    r.groups.splice(3, 0, { name: "public-1b", publishedAt: null, revertedAt: null });
    const p = plan(state(r), config, now(999), healthy("eng-test", "internal", "public-1"));
    expect(p.actions).toEqual([]);
    expect(p.notes[0]?.text).toContain("manual promotion to public-1b");
  });

  test("S7: a group index close to expiry is re-signed, release or not", () => {
    const soon = { "eng-test": T0 + 10 * 3600_000, internal: T0 + 100 * 3600_000 };
    const p = plan(state(), config, now(0), {}, { indexExpires: soon });
    expect(p.actions).toEqual([
      { kind: "resign", group: "eng-test", reason: expect.stringContaining("expires") },
    ]);
    expect(plan(state(), config, now(0), {}).actions).toEqual([]);
  });
});
