/**
 * The appfeed host holds nothing hot (issue 21, Footprint): its rules run at
 * load, hourly, after package changes and on demand, and the exclusions they
 * generate live in the supervisor. So it is stopped after a quiet period by
 * default (`hosts.idleStop.groups`), and the exclusions stay in force while
 * it is down; the next run starts it again with its content — no crash
 * counted, health green.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../core/config.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { APPFEED_TEST_LIMITS, exampleRules } from "../_shared/appfeed/testkit.ts";
import {
  type LuaTestAgent,
  rulesPayload,
  startLuaAgent,
  type TestKey,
  testKey,
} from "../_shared/lua/testkit.ts";
import { AppfeedFeed } from "./feed.ts";
import { appfeedHandler } from "./index.ts";

setDefaultTimeout(60_000);

let vendor: Vendor;
let key: TestKey;
let pkgDir: string;
let t: LuaTestAgent;
let feed: AppfeedFeed;

async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(20);
  return cond();
}

const host = () => t.agent.status().hosts?.find((h) => h.group === "appfeed");
const generated = () =>
  t.agent.exclusions
    .list()
    .filter((e) => e.source.startsWith("APPFEED:"))
    .map((e) => `${e.source} ${e.kind} ${e.value}`)
    .sort();

beforeAll(async () => {
  vendor = await makeVendor();
  key = testKey();
  pkgDir = mkdtempSync(join(tmpdir(), "outpost-dpkg-"));
  await vendor.release(
    "APPFEED",
    1,
    rulesPayload("APPFEED", exampleRules("APPFEED"), key, { limits: APPFEED_TEST_LIMITS }),
  );
  t = await startLuaAgent(vendor, [appfeedHandler] as ContentHandler[], {
    key,
    config: { hosts: { watchdogIntervalMs: 50, idleStop: { afterSeconds: 0.5, groups: ["appfeed"] } } },
  });
  expect((await t.agent.update()).rejected).toEqual([]);
  feed = new AppfeedFeed(t.agent, { watchDirs: [pkgDir], settleMs: 50 });
  await feed.start();
});

afterAll(async () => {
  feed?.stop();
  await t?.stop();
  for (const d of [t?.stateDir, pkgDir]) if (d) rmSync(d, { recursive: true, force: true });
  vendor?.cleanup();
});

test("appfeed is among the groups stopped when idle by default", () => {
  expect(parseConfig({ stateDir: "/var/lib/outpost" }).hosts.idleStop.groups).toContain("appfeed");
});

test("stopped when quiet, its exclusions stay; the next run starts it with its content; no crash", async () => {
  const before = generated();
  expect(before.length).toBeGreaterThan(0);
  const firstPid = host()?.pid;
  expect(await until(() => host()?.state === "stopped")).toBe(true);
  // Down, and nothing it generated is lost: the exclusions are the supervisor's.
  expect(generated()).toEqual(before);
  expect(t.agent.content().find((c) => c.type === "APPFEED")).toMatchObject({ version: 1 });
  // An hourly or on-demand run brings it back with its installed rules.
  await feed.runAll();
  expect(host()?.state).toBe("running");
  expect(host()?.pid).not.toBe(firstPid);
  await feed.applyAll();
  expect(generated()).toEqual(before);
  expect(t.agent.events.recent((e) => e.type === "host-crashed")).toEqual([]);
  expect(host()?.crashesInWindow).toBe(0);
  expect(t.agent.status().health).toBe("green");
});
