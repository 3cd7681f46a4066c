/**
 * Attacks and accidents around rollbacks and version numbers (R11, R12,
 * docs/update-protocol.md): the signing-time high-water mark survives a
 * manual rollback, a rollback never re-activates a version marked bad, an
 * automatic rollback keeps health AMBER until acknowledged or superseded,
 * and a version number re-used for different bytes is reported.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readRepoIndex } from "../../core/repo/publish.ts";
import { versionPath } from "../../core/store/store.ts";
import { liveText } from "../fixtures/vendor.ts";
import { publishRaw } from "./craft.ts";
import { expectRejected, GROUP, installGood, type Scene, TYPE } from "./harness.ts";

const HOUR = 3600 * 1000;

let scene: Scene | undefined;
afterEach(async () => {
  await scene?.cleanup();
  scene = undefined;
});

function listed(s: Scene) {
  const entry = readRepoIndex(s.vendor.repo, GROUP)?.content[TYPE];
  if (!entry) throw new Error("TestText not listed");
  return entry;
}

/** Releases `version` signed at `signedAt` and installs it. */
async function releaseAndInstall(s: Scene, version: number, text: string, signedAt: Date) {
  await s.vendor.release(TYPE, version, { "data.txt": text }, { now: signedAt });
  const r = await s.t.agent.update();
  expect(r.installed).toEqual([{ type: TYPE, version, previousVersion: s.live.version }]);
  s.live = { version, text };
}

/** The stored data.txt of `version`, the version installed now (its directory is named by its SHA-384). */
function installedDataFile(s: Scene, version: number): string {
  const installed = s.t.agent.content().find((c) => c.type === TYPE)!;
  expect(installed.version).toBe(version);
  const store = { root: join(s.t.stateDir, "content") } as Parameters<typeof versionPath>[0];
  const dir = `versions/${version}-${installed.sha384!.slice(0, 16)}`;
  return join(versionPath(store, { type: TYPE, dir }), "payload", "data.txt");
}

/**
 * v2 and v3 installed, then v3's payload damaged on disk and the agent
 * restarted: start-up rolls back to v2 on its own and marks v3 bad. The
 * damage is then repaired, so v3's bytes verify again — only the bad mark
 * stands between a rollback and v3.
 */
async function automaticRollbackFromV3(s: Scene): Promise<void> {
  await s.upgrade(2, "good v2");
  await s.upgrade(3, "v3 that fails to load");
  const file = installedDataFile(s, 3);
  const original = readFileSync(file);
  writeFileSync(file, "damaged");
  await s.t.restart();
  writeFileSync(file, original);
  s.live = { version: 2, text: "good v2" };
  expect(await liveText(s.t.agent)).toBe("good v2");
  const info = s.t.agent.content().find((c) => c.type === TYPE)!;
  expect(info.version).toBe(2);
  expect(info.lkgVersion).toBe(3);
  expect(info.badVersions).toContain(3);
}

describe("R11 after a rollback", () => {
  test("rollback v2 → v1, then a v3 signed before v2 → UPD_REPLAY_OLDER_SIGNATURE", async () => {
    const t0 = Date.now();
    // The agent's clock runs 5 h ahead so the vendor can sign "later" packages that are not in the future.
    scene = await installGood({ hostProcesses: true, now: () => new Date(Date.now() + 5 * HOUR) });
    await releaseAndInstall(scene, 2, "good v2", new Date(t0 + 2 * HOUR));
    await scene.t.agent.rollback(TYPE);
    scene.live = { version: 1, text: "good v1" };
    expect(await liveText(scene.t.agent)).toBe("good v1");
    // Signed after v1 (so the installed version alone would let it in), but before v2.
    await scene.vendor.release(TYPE, 3, { "data.txt": "held-back v3" }, { now: new Date(t0 + HOUR) });
    await expectRejected(scene, { code: "UPD_REPLAY_OLDER_SIGNATURE", file: listed(scene).path, type: TYPE });
  });

  test("the high-water mark survives a restart; a v3 signed after v2 still installs", async () => {
    const t0 = Date.now();
    scene = await installGood({ hostProcesses: true, now: () => new Date(Date.now() + 5 * HOUR) });
    await releaseAndInstall(scene, 2, "good v2", new Date(t0 + 2 * HOUR));
    await scene.t.agent.rollback(TYPE);
    scene.live = { version: 1, text: "good v1" };
    await scene.t.restart();
    await scene.vendor.release(TYPE, 3, { "data.txt": "replayed v3" }, { now: new Date(t0 + HOUR) });
    await expectRejected(scene, { code: "UPD_REPLAY_OLDER_SIGNATURE", file: listed(scene).path, type: TYPE });
    await releaseAndInstall(scene, 4, "good v4", new Date(t0 + 3 * HOUR));
    expect(await liveText(scene.t.agent)).toBe("good v4");
  });
});

describe("rollback never activates a version marked bad", () => {
  test("after an automatic rollback v3 → v2, a manual rollback → STORE_ROLLBACK_TARGET_BAD, v2 stays", async () => {
    scene = await installGood({ hostProcesses: true });
    await automaticRollbackFromV3(scene);
    const err = await scene.t.agent.rollback(TYPE).catch((e) => e);
    expect(err.code).toBe("STORE_ROLLBACK_TARGET_BAD");
    expect(err.message).toContain("v3");
    expect(await liveText(scene.t.agent)).toBe("good v2");
    expect(scene.t.agent.content().find((c) => c.type === TYPE)?.version).toBe(2);
  });
});

describe("health after an automatic rollback", () => {
  test("AMBER with versions and reason, across a restart, until acknowledged", async () => {
    scene = await installGood({ hostProcesses: true });
    await automaticRollbackFromV3(scene);
    const expectNotice = () => {
      const s = scene!.t.agent.status();
      expect(s.health).toBe("amber");
      const r = s.healthDetails?.find((h) => h.code === "CONTENT_ROLLED_BACK");
      expect(r?.source).toBe(`content:${TYPE}`);
      expect(r?.ack).toBe(true);
      expect(r?.message).toContain("from v3 to v2");
      expect(r?.message).toContain("STORE_CONTENT_CORRUPT");
    };
    expectNotice();
    await scene.t.restart();
    expectNotice();
    const events: string[] = [];
    const off = scene.t.agent.events.subscribe((e) => {
      if (e.type === "health-changed") events.push(String(e.change));
    });
    const ack = await scene.t.agent.ack(TYPE);
    off();
    expect(ack.acknowledged).toMatchObject({ from: 3, to: 2 });
    expect(scene.t.agent.status().health).toBe("green");
    expect(events).toContain("cleared");
    // Acknowledged means gone for good, not back on the next start.
    await scene.t.restart();
    expect(scene.t.agent.status().health).toBe("green");
    expect((await scene.t.agent.ack(TYPE)).acknowledged).toBeNull();
  });

  test("a newer good version clears it without an acknowledgement", async () => {
    scene = await installGood({ hostProcesses: true });
    await automaticRollbackFromV3(scene);
    expect(scene.t.agent.status().health).toBe("amber");
    await scene.upgrade(4, "good v4");
    const s = scene.t.agent.status();
    expect(s.healthDetails?.some((h) => h.code === "CONTENT_ROLLED_BACK")).toBe(false);
    expect(s.health).toBe("green");
  });
});

describe("R12: one version number, one package", () => {
  test("the installed version re-published with different bytes → UPD_VERSION_REUSED (event + alert)", async () => {
    scene = await installGood({ hostProcesses: true });
    const entry = await publishRaw(scene.vendor.repo, GROUP, scene.vendor.keys, {
      type: TYPE,
      version: 1,
      bytes: await scene.vendor.pack(TYPE, 1, { "data.txt": "other v1" }),
    });
    const events: unknown[] = [];
    const off = scene.t.agent.events.subscribe((e) => {
      if (e.type === "update-rejected") events.push(e.code);
    });
    await expectRejected(scene, { code: "UPD_VERSION_REUSED", file: entry.path, type: TYPE });
    off();
    expect(events).toEqual(["UPD_VERSION_REUSED"]);
  });
});

describe("content damaged on disk between runs, bytes changed but not its size", () => {
  // Start-up checks the layout first (sizes, nothing missing or extra) and each file's SHA-384 as
  // it is read for the handler: a same-size flip is only seen by the hash, in either isolation mode.
  for (const hostProcesses of [true, false]) {
    test(`${hostProcesses ? "host process" : "in-process"}: STORE_CONTENT_CORRUPT names the file, v2 comes back`, async () => {
      scene = await installGood({ hostProcesses });
      await scene.upgrade(2, "good v2");
      await scene.upgrade(3, "good v3");
      const file = installedDataFile(scene, 3);
      const original = readFileSync(file);
      const damaged = Buffer.from(original);
      damaged[0] = damaged[0]! ^ 0x20;
      writeFileSync(file, damaged);
      await scene.t.restart();
      scene.live = { version: 2, text: "good v2" };
      expect(await liveText(scene.t.agent)).toBe("good v2");
      const info = scene.t.agent.content().find((c) => c.type === TYPE)!;
      expect(info.badVersions).toContain(3);
      const notice = scene.t.agent.status().healthDetails?.find((h) => h.code === "CONTENT_ROLLED_BACK");
      expect(notice?.message).toContain("STORE_CONTENT_CORRUPT");
      expect(notice?.message).toContain("data.txt");
      expect(notice?.message).toContain("SHA-384");
    });
  }
});
