import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  disposeAgent,
  liveText,
  makeVendor,
  startAgent,
  type TestAgent,
  type Vendor,
} from "../../test/fixtures/vendor.ts";
import { serveRepo } from "../repo/serve.ts";

let vendor: Vendor;
let t: TestAgent | undefined;
beforeEach(async () => {
  vendor = await makeVendor();
});
afterEach(async () => {
  await disposeAgent(t);
  t = undefined;
  vendor.cleanup();
});

describe("Agent end to end", () => {
  test("installs from a folder repository, then upgrades, keeping the previous version as last-known-good", async () => {
    await vendor.release("TestText", 1, { "data.txt": "one" });
    t = await startAgent(vendor);
    const r1 = await t.agent.update();
    expect(r1.ok).toBe(true);
    expect(r1.installed).toEqual([{ type: "TestText", version: 1, previousVersion: null }]);
    expect(await liveText(t.agent)).toBe("one");

    await vendor.release("TestText", 2, { "data.txt": "two" });
    const r2 = await t.agent.update();
    expect(r2.installed).toEqual([{ type: "TestText", version: 2, previousVersion: 1 }]);
    expect(await liveText(t.agent)).toBe("two");
    const info = t.agent.content().find((c) => c.type === "TestText");
    expect(info?.version).toBe(2);
    expect(info?.lkgVersion).toBe(1);
    expect(t.agent.status().health).toBe("green");
    // By default the handler runs in its group's own sandboxed host process, not in the agent.
    const host = t.agent.status().hosts?.find((h) => h.group === "test");
    expect(host).toMatchObject({
      isolation: "process",
      state: "running",
      handlers: ["TestText"],
      restarts: 0,
    });
    expect(host?.pid).not.toBe(process.pid);
    expect(info?.host).toMatchObject({ group: "test", isolation: "process", pid: host?.pid });

    // Nothing new: the cycle is a no-op.
    const r3 = await t.agent.update();
    expect(r3.installed).toEqual([]);
    expect(r3.unchanged).toEqual(["TestText"]);
  });

  test("installs over HTTP, and a second cycle gets 304 for the index", async () => {
    await vendor.release("TestText", 1, { "data.txt": "http" });
    const server = serveRepo({ repo: vendor.repo, port: 0 });
    try {
      t = await startAgent(vendor, { repo: `http://127.0.0.1:${server.port}` });
      expect((await t.agent.update()).installed.length).toBe(1);
      const again = await t.agent.update();
      expect(again.index).toBe("not-modified");
      expect(again.ok).toBe(true);
      expect(await liveText(t.agent)).toBe("http");
    } finally {
      server.stop(true);
    }
  });

  test("content survives a restart and loads from the store without the repository", async () => {
    await vendor.release("TestText", 1, { "data.txt": "persisted" });
    t = await startAgent(vendor);
    await t.agent.update();
    rmSync(vendor.repo, { recursive: true, force: true });
    await t.restart();
    expect(await liveText(t.agent)).toBe("persisted");
  });

  test("manual rollback restores last-known-good and the next cycle does not reinstall the rolled-back version", async () => {
    await vendor.release("TestText", 1, { "data.txt": "good" });
    t = await startAgent(vendor);
    await t.agent.update();
    await vendor.release("TestText", 2, { "data.txt": "regretted" });
    await t.agent.update();
    const info = await t.agent.rollback("TestText");
    expect(info.version).toBe(1);
    expect(info.badVersions).toEqual([2]);
    expect(await liveText(t.agent)).toBe("good");
    const next = await t.agent.update();
    expect(next.installed).toEqual([]);
    expect(await liveText(t.agent)).toBe("good");
    // A newer fix installs normally.
    await vendor.release("TestText", 3, { "data.txt": "fixed" });
    expect((await t.agent.update()).installed[0]?.version).toBe(3);
    expect(await liveText(t.agent)).toBe("fixed");
  });

  test("rollback without last-known-good is a clear STORE_NO_LKG error", async () => {
    await vendor.release("TestText", 1, { "data.txt": "only" });
    t = await startAgent(vendor);
    await t.agent.update();
    await expect(t.agent.rollback("TestText")).rejects.toMatchObject({ code: "STORE_NO_LKG" });
    expect(await liveText(t.agent)).toBe("only");
  });

  test("content the handler refuses to load is rejected; the previous content stays live and the version is marked bad", async () => {
    await vendor.release("TestText", 1, { "data.txt": "fine" });
    t = await startAgent(vendor);
    await t.agent.update();
    await vendor.release("TestText", 2, { "data.txt": "CRASH-ON-LOAD" });
    const r = await t.agent.update();
    expect(r.ok).toBe(false);
    expect(r.rejected[0]?.code).toBe("HND_LOAD_FAILED");
    expect(await liveText(t.agent)).toBe("fine");
    expect(t.agent.content()[0]?.badVersions).toEqual([2]);
    expect(t.alerts.alerts.some((a) => a.code === "HND_LOAD_FAILED" && a.kind === "update-rejected")).toBe(
      true,
    );
    const status = t.agent.status();
    expect(status.health).toBe("amber");
    expect(status.lastErrors[0]?.code).toBe("HND_LOAD_FAILED");
  });

  test("installed content that fails to load at start-up rolls back to last-known-good on its own", async () => {
    await vendor.release("TestText", 1, { "data.txt": "stable" });
    t = await startAgent(vendor);
    await t.agent.update();
    await vendor.release("TestText", 2, { "data.txt": "new" });
    await t.agent.update();
    // Simulate content that passed every check but breaks the handler on the next start
    // (e.g. it depends on something the host lost): rewrite the installed payload and its manifest digest.
    const current = JSON.parse(readFileSync(join(t.stateDir, "content/TestText/current.json"), "utf8"));
    const dir = join(t.stateDir, "content/TestText", current.dir);
    writeFileSync(join(dir, "payload/data.txt"), "CRASH-ON-LOAD");
    await t.restart();
    expect(await liveText(t.agent)).toBe("stable");
    const info = t.agent.content()[0];
    expect(info?.version).toBe(1);
    expect(info?.badVersions).toContain(2);
    expect(t.agent.events.recent((e) => e.type === "content-rolled-back").length).toBe(1);
    expect(t.alerts.alerts.some((a) => a.kind === "content-rolled-back")).toBe(true);
  });
});
