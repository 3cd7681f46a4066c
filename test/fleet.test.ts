/**
 * Staged rollout end to end on a simulated fleet: 200 agents running the
 * real update client on a fake clock (seeded), a real repository, the real
 * release engine and fleet endpoint. A healthy release reaches every group
 * and every agent; a crashing release is stopped by fleet health in the
 * first group, no agent in a later group ever installs it, and the group it
 * reached is taken back with the last good content re-signed as a new
 * version.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetScenario, type ScenarioGroup } from "../bench/fleet/scenario.ts";
import { SIM_FILE, SIM_TYPE } from "../bench/fleet/sim.ts";
import { initKeys } from "../core/crypto/keys.ts";
import { readRepoIndex } from "../core/repo/publish.ts";
import { DirTransport } from "../core/update/transport.ts";

setDefaultTimeout(120_000);

const GROUPS: ScenarioGroup[] = [
  { name: "eng-test", promote: "manual", soakMinutes: 60, agents: 10 },
  { name: "internal", promote: "manual", soakMinutes: 60, agents: 20 },
  { name: "public-1", promote: "manual", soakMinutes: 60, agents: 30 },
  { name: "public-2", promote: "auto", soakMinutes: 60, agents: 40 },
  { name: "public-3", promote: "auto", soakMinutes: 60, agents: 50 },
  { name: "public-4", promote: "auto", soakMinutes: 60, agents: 50 },
];
const LATER = GROUPS.slice(1).map((g) => g.name);

let root: string;
let scenario: FleetScenario;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "outpost-fleet-"));
  const keysDir = join(root, "keys");
  const start = Date.now();
  await initKeys(keysDir, { now: new Date(start - 24 * 3600_000) });
  scenario = await FleetScenario.create({
    root,
    keysDir,
    groups: GROUPS,
    health: { threshold: 0.005, minSample: 20, minAdoption: 0.9, activeWindowMinutes: 180 },
    seed: 20240719,
    transport: (repo) => new DirTransport(repo),
    start,
  });
  await scenario.baseline(1);
});

afterAll(async () => {
  await scenario?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("staged rollout over 200 simulated agents", () => {
  test("the baseline reached every agent", () => {
    expect(scenario.sim.agents).toHaveLength(200);
    expect(scenario.sim.agents.every((a) => a.version === 1)).toBe(true);
  });

  test("a healthy release goes through every group and reaches every agent", async () => {
    const out = await scenario.release(2, 0, 24);
    expect(out.status).toBe("completed");
    expect(out.groupsReached).toEqual(GROUPS.map((g) => g.name));
    expect(out.allAgentsAt).not.toBeNull();
    expect(out.installedBy).toEqual(Object.fromEntries(GROUPS.map((g) => [g.name, g.agents])));
    expect(scenario.sim.agents.every((a) => a.version === 2)).toBe(true);
    // Groups were entered in order, each after the previous one's soak.
    const view = (await scenario.server.engine.status()).releases.find((r) => r.id === out.release)!;
    const times = view.groups.map((g) => Date.parse(g.publishedAt!));
    for (let i = 1; i < times.length; i++)
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(60 * 60_000);
  });

  test("a crashing release is aborted in the first group; no agent in a later group installs it", async () => {
    const out = await scenario.release(3, 1.0, 12);
    expect(out.status).toBe("aborted");
    expect(out.abortReason).toContain("eng-test");
    expect(out.groupsReached).toEqual(["eng-test"]);
    for (const g of LATER) expect(out.installedBy[g]).toBe(0);
    expect(out.installedTotal).toBeGreaterThan(0);
    expect(out.installedTotal).toBeLessThanOrEqual(10);
    // Aborted within the step that brought the report that crossed the threshold.
    expect(out.firstTroubleAt).not.toBeNull();
    expect(out.abortedAt! - out.firstTroubleAt!).toBeLessThanOrEqual(60_000);
    for (const g of LATER) expect(readRepoIndex(scenario.repo, g)?.content[SIM_TYPE]?.version).toBe(2);
    expect(readRepoIndex(scenario.repo, "eng-test")?.content[SIM_TYPE]?.version).toBe(4);
    expect(
      scenario.sim.agents
        .filter((a) => a.activated.some((x) => x.version === 3))
        .every((a) => a.opts.group === "eng-test"),
    ).toBe(true);
  });

  test("after the abort the first group converges on the last good content, re-signed as v4", async () => {
    await scenario.sim.runUntil(scenario.sim.now + 2 * 3600_000);
    const eng = scenario.sim.agents.filter((a) => a.opts.group === "eng-test");
    expect(eng.every((a) => a.version === 4)).toBe(true);
    for (const a of eng) {
      const rec = a.store.installed(SIM_TYPE)!;
      expect(a.store.view(rec).readText(SIM_FILE)).toStartWith("rules v2\n");
    }
    const rest = scenario.sim.agents.filter((a) => a.opts.group !== "eng-test");
    expect(rest.every((a) => a.version === 2 && !a.activated.some((x) => x.version === 3))).toBe(true);
  });
});
