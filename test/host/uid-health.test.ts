/**
 * Issue 12 item 7: a `runAs: agent` host that cannot drop its uid (a
 * directory above the state dir is closed to the unprivileged user) keeps
 * running as root without capabilities — and health says so: AMBER with
 * HOST_UID_NOT_DROPPED and the fix, in `agent status` JSON and in the human
 * renderer. Once the directory is opened and the host restarts, the reason
 * clears. Root only (without root no host drops its uid at all).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderStatus } from "../../core/cli/agent/render.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";

const root = process.getuid?.() === 0;
const closed = mkdtempSync(join(tmpdir(), "outpost-closed-"));
let vendor: Vendor;
let t: TestAgent;

beforeAll(async () => {
  if (!root) return;
  chmodSync(closed, 0o700);
  const stateDir = join(closed, "state");
  mkdirSync(stateDir, { mode: 0o700 });
  vendor = await makeVendor();
  await vendor.release("TestText", 1, { "data.txt": "hello" });
  t = await startAgent(vendor, { stateDir });
  const r = await t.agent.update();
  if (r.installed.length !== 1) console.error(JSON.stringify(r));
  expect(r.installed.map((i) => i.type)).toEqual(["TestText"]);
}, 60_000);

afterAll(async () => {
  await t?.stop();
  vendor?.cleanup();
  rmSync(closed, { recursive: true, force: true });
});

async function until<T>(f: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("condition not met before the deadline");
    await Bun.sleep(20);
  }
}

describe.skipIf(!root)("a host that could not drop its uid", () => {
  test("makes health AMBER with HOST_UID_NOT_DROPPED and says how to fix it", () => {
    const s = t.agent.status();
    const host = s.hosts?.find((h) => h.group === "test");
    expect(host?.uid).toBe(0);
    expect(host?.layers.uidDrop).toBe(false);
    expect(s.health).toBe("amber");
    const reason = s.healthDetails?.find((r) => r.code === "HOST_UID_NOT_DROPPED");
    expect(reason).toMatchObject({ source: "host:test", level: "amber" });
    expect(reason?.message).toContain(`${closed} is not searchable`);
    expect(reason?.message).toContain("chmod o+x");
    const human = renderStatus(s);
    expect(human).toContain("AMBER");
    expect(human).toContain("HOST_UID_NOT_DROPPED");
    expect(human).toContain("chmod o+x");
  });

  test("clears once the directory is searchable and the host restarts as the unprivileged user", async () => {
    chmodSync(closed, 0o711);
    const pid = t.agent.status().hosts?.find((h) => h.group === "test")?.pid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, "SIGKILL");
    const host = await until(() => {
      const h = t.agent.status().hosts?.find((x) => x.group === "test");
      return h?.state === "running" && h.pid !== pid ? h : undefined;
    }, 20_000);
    expect(host.uid).not.toBe(0);
    expect(t.agent.status().healthDetails?.some((r) => r.code === "HOST_UID_NOT_DROPPED")).toBe(false);
  }, 30_000);
});
