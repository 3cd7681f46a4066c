/**
 * The gate rules G1–G6 as pure functions, one attack or hold-up each
 * (gate.ts, health.ts, plan.ts S8). Fleets are made up in memory, so the
 * 50,000 idle forged agents of the forgery matrix fit in a unit test.
 */
import { describe, expect, test } from "bun:test";
import { weigh } from "./gate.ts";
import { type FleetAgent, groupHealth, judge } from "./health.ts";
import { plan } from "./plan.ts";
import type { Release } from "./state.ts";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
const MIN = 60_000;
const RULES = { threshold: 0.02, minSample: 20, minAdoption: 0.5, maxTenantShare: 0.1 };
const Q = { type: "T", version: 5, group: "g", since: T0, now: T0 + 30 * MIN, activeWindowMs: 180 * MIN };

function agents(
  tenant: string,
  n: number,
  o: { version?: number; crashed?: number; vendor?: boolean; refused?: boolean; pinned?: string[] } = {},
): FleetAgent[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tenant}/${tenant}-${i}`,
    tenant,
    group: "g",
    receivedAt: T0 + 10 * MIN,
    health: "green" as const,
    rejected: 0,
    vendor: o.vendor ?? false,
    enrolled: true,
    ...(o.pinned ? { pinned: o.pinned } : {}),
    content: {
      T: {
        version: o.refused ? 4 : (o.version ?? 5),
        bad: o.refused ? [5] : [],
        crashes: i < (o.crashed ?? 0) ? 3 : 0,
        rolledBackFrom: [],
        state: "loaded",
      },
    },
  }));
}

const honest = () => [...agents("globex", 30), ...agents("umbrella", 30)];
const verdict = (fleet: FleetAgent[], q: Partial<typeof Q> & { vendorOnly?: boolean } = {}) =>
  judge(groupHealth(fleet, { ...Q, ...q }), RULES);

describe("G1: vendorOnly groups", () => {
  test("customer agents in a vendor group are not counted, whatever they report", () => {
    const fleet = [...agents("outpost", 10, { vendor: true }), ...agents("acme", 50, { crashed: 50 })];
    expect(verdict(fleet, { vendorOnly: true })).toMatchObject({ verdict: "healthy" });
    expect(groupHealth(fleet, { ...Q, vendorOnly: true })).toMatchObject({ agents: 10, affected: 0 });
  });
});

describe("G2: pinned agents", () => {
  test("agents pinned one version behind do not hold adoption below minAdoption forever", () => {
    const fleet = [...honest(), ...agents("globex-pinned", 100, { version: 4, pinned: ["*"] })];
    expect(verdict(fleet).verdict).toBe("healthy");
    const unpinned = fleet.map((a) => ({ ...a, pinned: [] }));
    expect(judge(groupHealth(unpinned, Q), { ...RULES, maxTenantShare: 1 }).reason).toContain("adoption");
  });

  test("a pin of another type does not take an agent out of this type's counts", () => {
    const fleet = agents("globex", 10, { version: 4, pinned: ["Other"] });
    expect(groupHealth(fleet, Q).agents).toBe(10);
  });
});

describe("G3: only installs fill the sample", () => {
  test("agents that refused the version at validation are affected, but never make the sample", () => {
    const fleet = [
      ...agents("outpost", 5, { vendor: true }),
      ...agents("outpost-2", 30, { vendor: true, refused: true }),
    ];
    const h = groupHealth(fleet, Q);
    expect(h).toMatchObject({ exposed: 35, installed: 5, affected: 30 });
    expect(judge(h, RULES).verdict).toBe("unhealthy");
    expect(judge(h, RULES).sample).toBe(5);
  });
});

describe("G4: tenant weight caps", () => {
  test("300 forged healthy agents of one tenant do not mask a failure of the honest tenants", () => {
    const real = [...agents("globex", 30, { crashed: 3 }), ...agents("umbrella", 30, { crashed: 3 })];
    const forged = agents("acme", 300);
    expect(verdict(real).verdict).toBe("unhealthy");
    expect(verdict([...real, ...forged]).verdict).toBe("unhealthy");
    // Without the cap the same fleet reads healthy: 6 of 360 is under 2 %.
    expect(judge(groupHealth([...real, ...forged], Q), { ...RULES, maxTenantShare: 1 }).verdict).toBe(
      "healthy",
    );
  });

  test("50,000 idle forged agents of one tenant do not stall a group waiting for adoption", () => {
    const idle = agents("acme", 50_000, { version: 4 });
    expect(verdict(honest()).verdict).toBe("healthy");
    const j = verdict([...honest(), ...idle]);
    expect(j.verdict).toBe("healthy");
    expect(judge(groupHealth([...honest(), ...idle], Q), { ...RULES, maxTenantShare: 1 }).reason).toContain(
      "adoption",
    );
  });

  test("a lone tenant keeps its own shares (uniform scaling) and vendor tenants are never capped", () => {
    const w = weigh(
      [
        {
          tenant: "acme",
          vendor: false,
          agents: 1000,
          reporting: 1000,
          exposed: 1000,
          installed: 1000,
          adopted: 1000,
          affected: 10,
        },
        {
          tenant: "outpost",
          vendor: true,
          agents: 500,
          reporting: 500,
          exposed: 500,
          installed: 500,
          adopted: 500,
          affected: 0,
        },
      ],
      RULES,
    );
    expect(w.capped.map((c) => c.tenant)).toEqual(["acme"]);
    expect(w.agents).toBeCloseTo(500 + (0.1 / 0.9) * 500, 6);
    const alone = weigh(
      [
        {
          tenant: "acme",
          vendor: false,
          agents: 1000,
          reporting: 1000,
          exposed: 1000,
          installed: 1000,
          adopted: 1000,
          affected: 10,
        },
      ],
      RULES,
    );
    expect(alone.affected / alone.exposed).toBeCloseTo(0.01, 9);
  });
});

describe("G5: no single customer tenant decides an abort", () => {
  test("crash reports from one tenant alone hold the release with a reason; spread over two they abort", () => {
    const one = [...honest(), ...agents("acme", 10, { crashed: 10 })];
    expect(verdict(one)).toMatchObject({ verdict: "waiting" });
    expect(verdict(one).reason).toContain("without tenant acme alone");
    const spread = [...agents("globex", 30, { crashed: 3 }), ...agents("umbrella", 30, { crashed: 3 })];
    expect(verdict(spread).verdict).toBe("unhealthy");
  });

  test("the vendor's own agents decide alone (eng-test)", () => {
    expect(verdict(agents("outpost", 10, { vendor: true, crashed: 1 }), { vendorOnly: true }).verdict).toBe(
      "unhealthy",
    );
  });
});

describe("G6 / S8: a group that cannot reach its sample tells the operator, once", () => {
  const config = {
    groups: [
      { name: "g", promote: "manual" as const, soakMinutes: 60, vendorOnly: false },
      { name: "h", promote: "manual" as const, soakMinutes: 60, vendorOnly: false },
    ],
    health: { ...RULES, activeWindowMinutes: 180, sampleDeadlineMinutes: 120 },
    resignHours: 48,
  };
  const release = (log: Release["log"] = []): Release => ({
    id: "T-5",
    type: "T",
    version: 5,
    package: { file: "p", sha384: "a".repeat(96), size: 1, signingTime: new Date(T0).toISOString() },
    status: "active",
    startedAt: new Date(T0).toISOString(),
    finishedAt: null,
    groups: [
      { name: "g", before: null, publishedAt: new Date(T0).toISOString(), revertedAt: null },
      { name: "h", publishedAt: null, revertedAt: null },
    ],
    abort: null,
    log,
    health: [],
  });
  // 5 of the 20 needed have installed it; the other 25 still run the old version.
  const few = {
    "T-5": { g: groupHealth([...agents("globex", 5), ...agents("globex", 25, { version: 4 })], Q) },
  };

  test("before the deadline: nothing; after it: one stalled action; once logged: no more", () => {
    const state = (r: Release) => ({ schema: 1 as const, releases: [r] });
    expect(plan(state(release()), config, new Date(T0 + 119 * MIN), few).actions).toEqual([]);
    expect(plan(state(release()), config, new Date(T0 + 121 * MIN), few).actions).toEqual([
      expect.objectContaining({ kind: "stalled", group: "g" }),
    ]);
    const logged = release([{ at: new Date(T0).toISOString(), event: "stalled", group: "g", detail: "x" }]);
    expect(plan(state(logged), config, new Date(T0 + 200 * MIN), few).actions).toEqual([]);
  });

  test("a group that has its sample is not reported, however long it soaks", () => {
    const full = { "T-5": { g: groupHealth(honest(), Q) } };
    const state = { schema: 1 as const, releases: [release()] };
    expect(plan(state, config, new Date(T0 + 600 * MIN), full).actions).toEqual([]);
  });
});
