/**
 * The release engine against a real repository with real keys and the real
 * publisher: start → manual gates → automatic promotion after soak →
 * completion; health-triggered abort with re-signed rollback that a real
 * agent accepts; durable state across engine restarts and interrupted steps.
 */
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Heartbeat } from "../core/agent/heartbeat-protocol.ts";
import { isOutpostError } from "../core/errors.ts";
import { readPackage } from "../core/package/open.ts";
import { publish, readRepoIndex } from "../core/repo/publish.ts";
import { BACKENDS, type Backend, freshDb, stopTestPostgres } from "../test/fixtures/fleet-db.ts";
import { liveText, makeVendor, startAgent, type Vendor } from "../test/fixtures/vendor.ts";
import type { ReleaseAlert } from "./alerts.ts";
import { parseReleaseConfig, type ReleaseConfig } from "./config.ts";
import type { FleetDb } from "./db/index.ts";
import { ReleaseEngine } from "./engine.ts";
import { FleetRegistry } from "./fleet.ts";

// Each test publishes and signs a dozen times; on a loaded 2-core runner that can pass 5 s.
setDefaultTimeout(30_000);

const GROUPS = ["eng-test", "internal", "public-1", "public-2"];
const MIN = 60_000;

let vendor: Vendor;
let root: string;
let config: ReleaseConfig;
let clock: number;
let fleet: FleetRegistry;
let db: FleetDb;
let alerts: ReleaseAlert[];

/**
 * The repository every test starts from: v1 published to every group an hour before the file's
 * clock. Packing and publishing it (a CMS signature, verified, per group) cost ~0.3 s of CPU per
 * test when each test did it; now each test gets a copy, and the same clock.
 */
let startClock: number;
let template: { root: string };

beforeAll(async () => {
  vendor = await makeVendor();
  startClock = Date.now();
  const root = mkdtempSync(join(tmpdir(), "outpost-release-template-"));
  mkdirSync(join(root, "repo"));
  const bytes = await vendor.pack(
    "TestText",
    1,
    { "data.txt": "one" },
    { now: new Date(startClock - 3600_000) },
  );
  for (const g of GROUPS) {
    await publish({
      repo: join(root, "repo"),
      group: g,
      keys: vendor.keysDir,
      packageBytes: bytes,
      now: new Date(startClock - 3600_000),
    });
  }
  template = { root };
});
afterAll(async () => {
  vendor.cleanup();
  if (template) rmSync(template.root, { recursive: true, force: true });
  await stopTestPostgres();
});

async function setup(backend: Backend): Promise<void> {
  root = mkdtempSync(join(tmpdir(), "outpost-release-"));
  const repo = join(root, "repo");
  cpSync(join(template.root, "repo"), repo, { recursive: true, preserveTimestamps: true });
  clock = startClock;
  config = parseReleaseConfig(
    {
      repo,
      keys: vendor.keysDir,
      stateDir: join(root, "state"),
      groups: [
        { name: "eng-test", promote: "manual", soakMinutes: 30 },
        { name: "internal", promote: "manual", soakMinutes: 30 },
        { name: "public-1", promote: "manual", soakMinutes: 60 },
        { name: "public-2", promote: "auto", soakMinutes: 60 },
      ],
      health: { threshold: 0.005, minSample: 3, minAdoption: 0.5, activeWindowMinutes: 180 },
    },
    "release.json",
  );
  fleet = new FleetRegistry();
  db = await freshDb(backend, config.paths.stateDir);
  alerts = [];
}
async function teardown(): Promise<void> {
  await db.close();
  rmSync(root, { recursive: true, force: true });
}

const engine = () =>
  new ReleaseEngine({
    config,
    now: () => new Date(clock),
    db,
    fleet,
    alerter: { send: (a) => alerts.push(a), flush: async () => {} },
  });

async function packFile(version: number, text: string, at = clock): Promise<string> {
  const file = join(root, `TestText-${version}.tar`);
  writeFileSync(file, await vendor.pack("TestText", version, { "data.txt": text }, { now: new Date(at) }));
  return file;
}

const listed = (group: string) => readRepoIndex(config.paths.repo, group)?.content.TestText;

/** n agents in `group` reporting `version`, `bad` of them having rolled back from it. */
function report(group: string, n: number, version: number, bad = 0): void {
  for (let i = 0; i < n; i++) {
    const rolledBack = i < bad;
    const hb: Heartbeat = {
      schema: 1,
      agentId: `${group}-agent-${i}`,
      tenant: "acme",
      group,
      agentVersion: "test",
      sentAt: new Date(clock).toISOString(),
      health: "green",
      content: [
        {
          type: "TestText",
          version: rolledBack ? 1 : version,
          handlerState: "loaded",
          badVersions: rolledBack ? [version] : [],
          crashes: 0,
          rollbacks: rolledBack
            ? [{ from: version, to: 1, at: new Date(clock).toISOString(), automatic: true }]
            : [],
        },
      ],
      rejected: 0,
      lastRejections: [],
    };
    // The vendor's own enrolled fleet: counted in full (gate G4, G5 concern customer tenants).
    fleet.ingest(hb, clock, { enrolled: true, vendor: true });
  }
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isOutpostError(e)) return e.code;
    throw e;
  }
  throw new Error("expected a rejection");
}

describe.each(BACKENDS)("release engine on %s", (backend) => {
  beforeEach(() => setup(backend));
  afterEach(teardown);

  test("a healthy release: start → manual gates → automatic promotion after soak → complete", async () => {
    const e = engine();
    const r = await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    expect(r.groups.map((g) => g.publishedAt !== null)).toEqual([true, false, false, false]);
    expect(GROUPS.map((g) => listed(g)?.version)).toEqual([2, 1, 1, 1]);
    expect(listed("eng-test")?.previous?.version).toBe(1);

    report("eng-test", 3, 2);
    clock += 40 * MIN;
    expect((await e.tick()).actions).toEqual([]); // internal is a manual gate
    await e.promote();
    report("internal", 3, 2);
    clock += 40 * MIN;
    await e.promote();
    expect(GROUPS.map((g) => listed(g)?.version)).toEqual([2, 2, 2, 1]);

    report("public-1", 3, 2);
    clock += 30 * MIN;
    expect((await e.tick()).notes[0]?.text).toContain("soaking in public-1");
    clock += 31 * MIN;
    const t = await e.tick();
    expect(t.actions).toEqual([expect.objectContaining({ kind: "promote", group: "public-2" })]);
    expect(GROUPS.map((g) => listed(g)?.version)).toEqual([2, 2, 2, 2]);

    report("public-2", 3, 2);
    clock += 61 * MIN;
    expect((await e.tick()).actions).toEqual([expect.objectContaining({ kind: "complete" })]);
    const view = await e.status();
    expect(view.releases[0]).toMatchObject({ id: "TestText-2", status: "completed" });
    expect(view.groups.map((g) => g.content.TestText)).toEqual([2, 2, 2, 2]);
    expect(view.releases[0]?.health.length).toBeGreaterThan(0);
    expect(alerts.map((a) => a.kind)).toEqual(["release-completed"]);
  });

  test("an unhealthy group aborts on its own: reached groups get the old content re-signed as v+1, the rest never see it", async () => {
    const e = engine();
    await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    report("eng-test", 3, 2);
    clock += 40 * MIN;
    await e.promote();
    report("internal", 10, 2, 1);
    clock += 5 * MIN;
    const t = await e.tick();
    expect(t.actions).toEqual([expect.objectContaining({ kind: "abort" })]);
    expect(GROUPS.map((g) => listed(g)?.version)).toEqual([3, 3, 1, 1]);
    for (const g of ["eng-test", "internal"]) {
      const entry = listed(g)!;
      expect(entry.previous?.version).toBe(1);
      const pkg = readPackage(readFileSync(join(config.paths.repo, entry.path)), { file: entry.path });
      expect(pkg.manifest.version).toBe(3);
      expect(new TextDecoder().decode(pkg.payload.get("data.txt")?.data)).toBe("one");
    }
    expect(alerts).toEqual([
      expect.objectContaining({
        kind: "release-aborted",
        by: "health",
        revertedGroups: ["eng-test", "internal"],
        untouchedGroups: ["public-1", "public-2"],
      }),
    ]);
    const view = (await e.status()).releases[0]!;
    expect(view.status).toBe("aborted");
    expect(view.groups.map((g) => g.phase)).toEqual(["reverted", "reverted", "untouched", "untouched"]);
    // Nothing left to do, and the next release must be newer than the re-signed v3.
    expect((await e.tick()).actions).toEqual([]);
    expect(await code(e.start({ type: "TestText", version: 3, packageFile: await packFile(3, "x") }))).toBe(
      "REL_VERSION_NOT_NEWER",
    );
    await e.start({ type: "TestText", version: 4, packageFile: await packFile(4, "four", clock + 1000) });
    expect(listed("eng-test")?.version).toBe(4);
  });

  test("a real agent that installed the bad version accepts the re-signed rollback (R10, R11 hold)", async () => {
    const agent = await startAgent(vendor, {
      repo: config.paths.repo,
      config: { update: { group: "eng-test" } },
      now: () => new Date(clock),
    });
    try {
      expect((await agent.agent.update()).installed).toEqual([
        { type: "TestText", version: 1, previousVersion: null },
      ]);
      const e = engine();
      clock += MIN;
      await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
      clock += MIN;
      await agent.agent.update();
      expect(await liveText(agent.agent)).toBe("two");
      clock += MIN;
      await e.abort({ reason: "customer reports" });
      clock += MIN;
      const r = await agent.agent.update();
      expect(r.rejected).toEqual([]);
      expect(r.installed).toEqual([{ type: "TestText", version: 3, previousVersion: 2 }]);
      expect(await liveText(agent.agent)).toBe("one");
      expect(alerts[0]).toMatchObject({
        kind: "release-aborted",
        by: "operator",
        reason: "customer reports",
      });
    } finally {
      await agent.stop();
      rmSync(agent.stateDir, { recursive: true, force: true });
    }
  });

  test("start refuses what some agents would refuse, and a second active release of a type", async () => {
    const e = engine();
    expect(
      await code(e.start({ type: "TestText", version: 1, packageFile: await packFile(1, "again") })),
    ).toBe("REL_VERSION_NOT_NEWER");
    const file = await packFile(5, "five");
    expect(await code(e.start({ type: "TestText", version: 6, packageFile: file }))).toBe(
      "REL_VERSION_MISMATCH",
    );
    const early = await packFile(2, "signed before v1", clock - 2 * 3600_000);
    expect(await code(e.start({ type: "TestText", version: 2, packageFile: early }))).toBe(
      "REL_SIGNED_TOO_EARLY",
    );
    await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    expect(
      await code(e.start({ type: "TestText", version: 3, packageFile: await packFile(3, "three") })),
    ).toBe("REL_ACTIVE_EXISTS");
    expect(await code(e.promote({ type: "Other" }))).toBe("REL_NO_ACTIVE");
  });

  test("promote is refused while the current group is unhealthy, unless forced with a reason (O1, O2)", async () => {
    const e = engine();
    await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    report("eng-test", 3, 2, 1);
    expect(await code(e.promote())).toBe("REL_UNHEALTHY");
    expect(await code(e.promote({ force: true }))).toBe("REL_FORCE_REASON");
    const r = await e.promote({ force: true, reason: "known flaky host" });
    expect(r.groups[1]?.publishedAt).not.toBeNull();
  });

  test("state is durable: a new engine resumes, and an interrupted publish is finished exactly once", async () => {
    await engine().start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    // A crash after recording the intent for internal but before publishing to it.
    const state = await db.releases.load();
    state.releases[0]!.groups[1]!.before = { ...listed("internal")! };
    await db.releases.save(state);
    const t = await engine().tick();
    expect(t.actions).toEqual([expect.objectContaining({ kind: "promote", group: "internal" })]);
    expect(listed("internal")?.version).toBe(2);
    expect(listed("internal")?.previous?.version).toBe(1);
    const after = (await db.releases.load()).releases[0]!;
    expect(after.groups[1]?.publishedAt).not.toBeNull();
    expect(after.groups[1]?.before?.version).toBe(1);
    expect((await engine().tick()).actions).toEqual([]);
    // Corrupt release state stops everything rather than guessing.
    await db.driver.run("UPDATE releases SET package = '{not json'");
    expect(await code(engine().tick())).toBe("REL_STATE_CORRUPT");
  });

  test("an abort interrupted after re-packing resumes with the same re-signed package", async () => {
    const e = engine();
    await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    await e.promote({ force: true, reason: "test" });
    await e.abort({ reason: "first try" });
    const first = listed("eng-test")!;
    // Pretend the second group's revert never happened.
    const state = await db.releases.load();
    state.releases[0]!.groups[1]!.revertedAt = null;
    await db.releases.save(state);
    // Status read mid-abort says so, rather than showing the group as still live.
    expect((await engine().status()).releases[0]?.groups.map((g) => g.phase)).toEqual([
      "reverted",
      "reverting",
      "untouched",
      "untouched",
    ]);
    const t = await engine().tick();
    expect(t.actions).toEqual([{ kind: "revert", release: "TestText-2", group: "internal" }]);
    expect(listed("internal")?.sha384).toBe(first.sha384);
  });

  test("a tick re-signs group indexes before they expire, so idle groups never go stale (R5)", async () => {
    const before = GROUPS.map((g) => readRepoIndex(config.paths.repo, g)!);
    clock += 5 * 24 * 3600_000 + 3600_000; // 7-day indexes published an hour ago: < 48 h left
    const t = await engine().tick();
    expect(t.actions.map((a) => a.kind)).toEqual(["resign", "resign", "resign", "resign"]);
    GROUPS.forEach((g, i) => {
      const after = readRepoIndex(config.paths.repo, g)!;
      expect(after.serial).toBe(before[i]!.serial + 1);
      expect(after.content).toEqual(before[i]!.content);
      expect(Date.parse(after.expires)).toBe(clock + 7 * 24 * 3600_000);
    });
    expect((await engine().tick()).actions).toEqual([]);
  });

  test("a failing step is reported and retried next tick without stopping the others", async () => {
    const e = engine();
    await e.start({ type: "TestText", version: 2, packageFile: await packFile(2, "two") });
    await e.promote({ force: true, reason: "test: skip the soak" });
    await e.promote({ force: true, reason: "test: skip the soak" });
    // Someone published a higher version to public-2 by hand: the automatic promotion cannot go there.
    await publish({
      repo: config.paths.repo,
      group: "public-2",
      keys: vendor.keysDir,
      packageBytes: await vendor.pack("TestText", 9, { "data.txt": "nine" }),
      now: new Date(clock),
    });
    clock += 5 * 24 * 3600_000 + 3600_000;
    report("public-1", 3, 2);
    const t = await e.tick();
    expect(t.errors).toEqual([
      expect.objectContaining({
        action: expect.objectContaining({ kind: "promote", group: "public-2" }),
        code: "IDX_DOWNGRADE",
      }),
    ]);
    // The re-signing of the expiring indexes still happened.
    expect(t.actions.filter((a) => a.kind === "resign").length).toBeGreaterThan(0);
    const again = await e.tick();
    expect(again.errors.map((x) => x.code)).toEqual(["IDX_DOWNGRADE"]);
  });
});
