/**
 * Behavior fed by the kernel sensors (core/sensors) through the sensor
 * bus, as `agent run` wires it: the example rules for cron, sudoers and
 * authorized_keys fire on real writes on this host, and a process rule
 * sees a real exec with its command line. Real paths are used where the
 * rule demands them (/etc/cron*, /etc/sudoers.d/), with names unique to
 * this run and removed afterwards; authorized_keys lives in a temp dir.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../../core/agent/events.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { sensorsService } from "../../core/sensors/service.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { type LuaTestAgent, rulesPayload, startLuaAgent, testKey } from "../_shared/lua/testkit.ts";
import { productRulesFeedHandler } from "../ProductRulesFeed/index.ts";
import { behaviorFeedService } from "./bus-feed.ts";
import { behaviorHandler } from "./index.ts";

setDefaultTimeout(60_000);
const isRoot = process.getuid?.() === 0;
const EXAMPLES = join(import.meta.dir, "../../examples");
const example = (type: string, file: string) => readFileSync(join(EXAMPLES, type, file), "utf8");
const tag = `outpost-test-${process.pid}-${Date.now()}`;

const home = mkdtempSync(join(tmpdir(), "outpost-home-"));
const sshDir = join(home, ".ssh");
const cronDir = `/etc/cron.${tag}`;
const sudoersDir = "/etc/sudoers.d";
const sudoersFile = join(sudoersDir, tag);

let vendor: Vendor;
let t: LuaTestAgent;
// A loopback listener whose port marks the connection the network rule must see.
let listener: { port: number; stop(closeActive?: boolean): void } | undefined;
const detections: AgentEvent[] = [];
const services: { start(): unknown; stop(): unknown }[] = [];

async function until(cond: () => boolean, ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(20);
  return cond();
}
const fired = (rule: string, path: string) =>
  detections.find((d) => d.rule === rule && (d.fields as Record<string, unknown>)?.path === path);

beforeAll(async () => {
  if (!isRoot) return;
  mkdirSync(sshDir, { recursive: true });
  mkdirSync(cronDir);
  mkdirSync(sudoersDir, { recursive: true, mode: 0o750 });
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  listener = server;
  vendor = await makeVendor();
  const key = testKey();
  await vendor.release(
    "ProductRulesFeed",
    1,
    rulesPayload(
      "ProductRulesFeed",
      {
        proc: example("ProductRulesFeed", "proc.lua"),
        text: example("ProductRulesFeed", "text.lua"),
        net: example("ProductRulesFeed", "net.lua"),
      },
      key,
    ),
  );
  const rules = {
    "BEH-008-cron-persistence": example("Behavior", "BEH-008-cron-persistence.lua"),
    "BEH-009-ssh-authorized-keys": example("Behavior", "BEH-009-ssh-authorized-keys.lua"),
    "BEH-017-sudoers-change": example("Behavior", "BEH-017-sudoers-change.lua"),
    "exec-marker": `
describe{ title = "Marked process started", severity = "low" }
on("process.start", function(e)
  if e.cmdline:find("${tag}", 1, true) then detect{ pid = e.pid, cmdline = e.cmdline, exe = e.exe } end
end)`,
    "connect-marker": `
describe{ title = "Marked connection", severity = "low" }
on("network.connect", function(e)
  if e.rport == ${server.port} then detect{ remote = e.remote, rport = e.rport, uid = e.uid } end
end)`,
  };
  await vendor.release(
    "Behavior",
    1,
    rulesPayload("Behavior", rules, key, {
      // The host's own /proc poll stays on: the bus must switch it off for the types it delivers.
      settings: { requiresProduct: true, sensor: { processes: true, connections: false } },
    }),
  );
  t = await startLuaAgent(vendor, [behaviorHandler, productRulesFeedHandler] as ContentHandler[], {
    key,
    config: { sensors: { process: "auto", files: { paths: [sshDir, cronDir, sudoersDir] } } },
  });
  const report = await t.agent.update();
  expect(report.rejected).toEqual([]);
  t.agent.events.subscribe((e) => {
    if (e.type === "detection") detections.push(e);
  });
  const ctx = { config: t.agent.config, api: t.agent };
  services.push(sensorsService(ctx), behaviorFeedService(ctx));
  for (const s of services) await s.start();
  // The feed learns the rules' event types from the host before anything is written.
  expect(
    await until(() => {
      const c = (t.agent.status().sensors as { consumers: { name: string; types: string[] }[] }).consumers;
      return c.find((x) => x.name === "Behavior")?.types.includes("file.write") ?? false;
    }),
  ).toBe(true);
});

afterAll(async () => {
  for (const s of services.reverse()) await s.stop();
  await t?.stop();
  listener?.stop(true);
  rmSync(cronDir, { recursive: true, force: true });
  rmSync(sudoersFile, { force: true });
  // /etc/sudoers.d stays even when this test made it: a second copy of the suite may be writing its own
  // file there (removing the directory failed that copy with ENOENT); an empty 0750 directory is inert.
  rmSync(home, { recursive: true, force: true });
  vendor?.cleanup();
});

describe.if(isRoot)("Behavior on the sensor bus (real kernel events)", () => {
  test("cron, sudoers and authorized_keys rules fire on real writes", async () => {
    const cronFile = join(cronDir, "job");
    const keys = join(sshDir, "authorized_keys");
    writeFileSync(cronFile, "* * * * * root /bin/true\n");
    writeFileSync(sudoersFile, "# outpost test: no rules\n", { mode: 0o440 });
    await Bun.spawn(["sh", "-c", `echo 'ssh-ed25519 AAAA test' >> ${keys}`]).exited;
    expect(await until(() => !!fired("BEH-008-cron-persistence", cronFile))).toBe(true);
    expect(await until(() => !!fired("BEH-017-sudoers-change", sudoersFile))).toBe(true);
    expect(await until(() => !!fired("BEH-009-ssh-authorized-keys", keys))).toBe(true);
    // The writer is named from the fanotify event's pid.
    expect((fired("BEH-009-ssh-authorized-keys", keys)!.fields as Record<string, unknown>).writer).toMatch(
      /(sh|dash|bash)$/,
    );
  });

  test("a real exec reaches process rules with its command line; the host stopped polling /proc", async () => {
    await Bun.spawn(["sh", "-c", "sleep 0.3", tag]).exited;
    expect(await until(() => detections.some((d) => d.rule === "exec-marker"))).toBe(true);
    const d = detections.find((x) => x.rule === "exec-marker")!;
    expect(String((d.fields as Record<string, unknown>).cmdline)).toBe(`sh -c sleep 0.3 ${tag}`);
    const status = (await t.agent.call("Behavior", "status", {})) as Record<string, unknown>;
    expect(status.sensor).toBe("off");
    expect(status.sensorBus).toContain("process.start");
  });

  test("a real connect reaches network rules from the kernel (nfnetlink_log), not from /proc/net/tcp", async () => {
    const sensors = t.agent.status().sensors as { network: { sensor: string; reason: string | null } };
    expect(sensors.network.sensor, sensors.network.reason ?? "").toBe("nflog");
    const c = await Bun.connect({ hostname: "127.0.0.1", port: listener!.port, socket: { data() {} } });
    c.end();
    expect(await until(() => detections.some((d) => d.rule === "connect-marker"))).toBe(true);
    const d = detections.find((x) => x.rule === "connect-marker")!;
    expect(d.fields).toMatchObject({ remote: "127.0.0.1", rport: listener!.port, uid: 0 });
    const status = (await t.agent.call("Behavior", "status", {})) as Record<string, unknown>;
    expect(status.sensorBus).toContain("network.connect");
  });
});
