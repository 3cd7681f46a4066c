/** Per-type release rules T1–T4 as pure functions, with the scheduler that applies them. */
import { describe, expect, test } from "bun:test";
import { parseReleaseConfig } from "./config.ts";
import type { GroupHealth } from "./health.ts";
import { plan } from "./plan.ts";
import type { Release } from "./state.ts";
import {
  groupsFor,
  liveGate,
  type ModelEvidence,
  type ReleaseFacts,
  TypeRulesSchema,
  thresholdFor,
} from "./type-rules.ts";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

const input = {
  repo: "/r",
  keys: "/k",
  groups: [
    { name: "eng-test", promote: "manual", soakMinutes: 60 },
    { name: "public-1", promote: "manual", soakMinutes: 120 },
    { name: "public-2", promote: "auto", soakMinutes: 120 },
    { name: "public-3", promote: "auto", soakMinutes: 240 },
  ],
  health: { threshold: 0.005, minSample: 50, minAdoption: 0.5 },
};
const config = parseReleaseConfig(input);

describe("T1/T2: a type's groups, gates, soaks and threshold", () => {
  test("MLModel by default: public-2 manual, every soak doubled, threshold 0.2 %; other types unchanged", () => {
    expect(groupsFor(config, "MLModel").map((g) => [g.name, g.promote, g.soakMinutes])).toEqual([
      ["eng-test", "manual", 120],
      ["public-1", "manual", 240],
      ["public-2", "manual", 240],
      ["public-3", "auto", 480],
    ]);
    expect(groupsFor(config, "Hmpa_data")).toEqual(config.groups);
    expect(thresholdFor(config, "MLModel")).toBe(0.002);
    expect(thresholdFor(config, "Hmpa_data")).toBe(0.005);
  });

  test("AgentSoftware by default: every public step manual, soaks tripled, threshold 0.1 % (issue 20)", () => {
    expect(groupsFor(config, "AgentSoftware").map((g) => [g.name, g.promote, g.soakMinutes])).toEqual([
      ["eng-test", "manual", 180],
      ["public-1", "manual", 360],
      ["public-2", "manual", 360],
      ["public-3", "manual", 720],
    ]);
    expect(thresholdFor(config, "AgentSoftware")).toBe(0.001);
  });

  test("extra groups go after their anchor; a type threshold above the fleet's does not loosen it", () => {
    const c = parseReleaseConfig({
      ...input,
      types: {
        Behavior: {
          extraGroups: [{ name: "canary-ml", soakMinutes: 30, after: "eng-test" }],
          healthThreshold: 0.5,
        },
      },
    });
    expect(groupsFor(c, "Behavior").map((g) => `${g.name}:${g.promote}`)).toEqual([
      "eng-test:manual",
      "canary-ml:manual",
      "public-1:manual",
      "public-2:auto",
      "public-3:auto",
    ]);
    expect(thresholdFor(c, "Behavior")).toBe(0.005);
    // Setting `types` replaces the defaults: MLModel has no rules in this config.
    expect(groupsFor(c, "MLModel")).toEqual(c.groups);
  });

  test("the scheduler holds an MLModel release that a plain type would promote", () => {
    const healthy = (id: string): Record<string, Record<string, GroupHealth>> => ({
      [id]: {
        "public-1": {
          group: "public-1",
          agents: 1000,
          reporting: 900,
          exposed: 900,
          adopted: 899,
          affected: 1,
        },
      },
    });
    const mk = (type: string): Release => ({
      id: `${type}-5`,
      type,
      version: 5,
      package: { file: "p.tar", sha384: "a".repeat(96), size: 1, signingTime: iso(T0) },
      status: "active",
      startedAt: iso(T0),
      finishedAt: null,
      groups: groupsFor(config, type).map((g) => ({
        name: g.name,
        ...(g.name === "eng-test" || g.name === "public-1" ? { before: null } : {}),
        publishedAt: g.name === "eng-test" ? iso(T0) : g.name === "public-1" ? iso(T0 + 60 * MIN) : null,
        revertedAt: null,
      })),
      abort: null,
      log: [],
      health: [],
    });
    // 130 minutes in public-1: past the plain 120-minute soak.
    const now = new Date(T0 + 190 * MIN);
    const plain = plan({ schema: 1, releases: [mk("Hmpa_data")] }, config, now, healthy("Hmpa_data-5"));
    expect(plain.actions).toEqual([expect.objectContaining({ kind: "promote", group: "public-2" })]);
    const ml = plan({ schema: 1, releases: [mk("MLModel")] }, config, now, healthy("MLModel-5"));
    expect(ml.actions).toEqual([]);
    expect(ml.notes[0]!.text).toContain("awaiting manual promotion to public-2");
    // An affected share of 0.11 % passes the fleet's 0.5 % but not MLModel's 0.2 %… at 0.3 % it aborts.
    const sick = { "MLModel-5": { "public-1": { ...healthy("x").x!["public-1"]!, affected: 3 } } };
    expect(plan({ schema: 1, releases: [mk("MLModel")] }, config, now, sick).actions[0]).toMatchObject({
      kind: "abort",
    });
    const sickPlain = { "Hmpa_data-5": { "public-1": { ...healthy("x").x!["public-1"]!, affected: 3 } } };
    expect(plan({ schema: 1, releases: [mk("Hmpa_data")] }, config, now, sickPlain).actions[0]).toMatchObject(
      {
        kind: "promote",
      },
    );
  });
});

describe("T3/T4: a live model only after its telemetry twin earned it", () => {
  const rules = TypeRulesSchema.parse({
    liveGate: { minTelemetryMinutes: 3 * 1440, maxDetectionRate: 0.001, minScores: 1000 },
  });
  const live = [{ name: "lr", mode: "live" as const }];
  const telem = (startedAt: number, status: ReleaseFacts["status"] = "completed"): ReleaseFacts => ({
    type: "MLModel",
    version: 1,
    startedAt: iso(startedAt),
    status,
    models: [{ name: "lr", mode: "telemetry" }],
  });
  const ev = (e: ModelEvidence) => (): ModelEvidence => e;
  const later = new Date(T0 + 4 * 1440 * MIN);
  const plenty = ev({ scores: 50_000, over: 20, agents: 300 });

  test("allowed: four days in telemetry, 0.04 % over threshold", () => {
    const v = liveGate(rules, "MLModel", live, [telem(T0)], plenty, later);
    expect(v.allowed).toBe(true);
    expect(v.reasons[0]).toContain("20 of 50000 over threshold");
  });

  test("a telemetry model itself is never gated", () => {
    const v = liveGate(rules, "MLModel", [{ name: "lr", mode: "telemetry" }], [], plenty, later);
    expect(v.allowed).toBe(true);
  });

  test("T3: no telemetry twin ever released", () => {
    const v = liveGate(rules, "MLModel", live, [], plenty, later);
    expect(v).toMatchObject({ allowed: false, reasons: [expect.stringContaining("T3 lr: no release")] });
  });

  test("T3: the twin of another model, or of another type, does not count", () => {
    const other = { ...telem(T0), models: [{ name: "other", mode: "telemetry" as const }] };
    const otherType = { ...telem(T0), type: "Behavior" };
    expect(liveGate(rules, "MLModel", live, [other, otherType], plenty, later).allowed).toBe(false);
  });

  test("T3: an aborted telemetry release does not count", () => {
    expect(liveGate(rules, "MLModel", live, [telem(T0, "aborted")], plenty, later).allowed).toBe(false);
  });

  test("T3: two days in telemetry is not three", () => {
    const v = liveGate(rules, "MLModel", live, [telem(T0)], plenty, new Date(T0 + 2 * 1440 * MIN));
    expect(v.allowed).toBe(false);
    expect(v.reasons[0]).toContain("2880 of 4320 minutes; not before 2026-03-04T00:00:00.000Z");
  });

  test("T4: too few telemetry scores to judge", () => {
    const v = liveGate(rules, "MLModel", live, [telem(T0)], ev({ scores: 999, over: 0, agents: 3 }), later);
    expect(v.reasons[0]).toContain("T4 lr: 999 telemetry scores from 3 agents");
    expect(v.allowed).toBe(false);
  });

  test("T4: a detection rate above the bound", () => {
    const v = liveGate(
      rules,
      "MLModel",
      live,
      [telem(T0)],
      ev({ scores: 10_000, over: 11, agents: 50 }),
      later,
    );
    expect(v.allowed).toBe(false);
    expect(v.reasons[0]).toContain("11 of 10000 telemetry scores over threshold (0.110%)");
  });

  test("a type without a live gate lets live models through", () => {
    expect(liveGate(undefined, "MLModel", live, [], plenty, later).allowed).toBe(true);
  });
});
