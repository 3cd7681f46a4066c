/**
 * On-access coverage of what appears after start, against the real kernel
 * (root): a tmpfs mounted under a configured temp path, a directory created
 * there, a tree moved in from outside — each in block mode (the signature
 * file is refused with EPERM) and detect mode (reported) — and a pseudo
 * filesystem under the path, skipped and reported in status. Only temp
 * dirs and mounts this test makes; every mount is detached in afterAll
 * even if a test failed half way.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../../core/agent/events.ts";
import { readMounts } from "../../core/sensors/mounts.ts";
import { sensorsService } from "../../core/sensors/service.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { defaultRegistry } from "../index.ts";
import { onAccessService } from "./on-access-service.ts";
import { detectModeSensor } from "./on-access-testkit.ts";
import { scanningService } from "./scan/runtime.ts";

setDefaultTimeout(60_000);
const isRoot = process.getuid?.() === 0;
const hex = (s: string) => Buffer.from(s).toString("hex");
const PAYLOAD = "payload outpost-mark-one here";

const root = mkdtempSync(join(tmpdir(), "outpost-marks-"));
const watched = join(root, "watched");
const outside = join(root, "outside");
mkdirSync(watched, { recursive: true });
mkdirSync(outside, { recursive: true });
const mounted: string[] = [];

let vendor: Vendor;
let agent: TestAgent;
const events: AgentEvent[] = [];
const services: { start(): unknown; stop(): unknown }[] = [];

/**
 * A shell command; what must be seen as a stranger's runs as a grandchild (`tee`, `cat`): our direct
 * children — this shell — count as the agent's own processes, and their opens are never scanned.
 */
async function sh(cmd: string): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(["sh", "-c", cmd], { stdout: "ignore", stderr: "pipe" });
  const code = await p.exited;
  return { code, stderr: await new Response(p.stderr).text() };
}

async function mount(args: string[], at: string): Promise<void> {
  mkdirSync(at, { recursive: true });
  const p = Bun.spawn(["mount", ...args, at], { stdout: "ignore", stderr: "pipe" });
  const code = await p.exited;
  if (code !== 0) throw new Error(`mount ${args.join(" ")} ${at}: ${await new Response(p.stderr).text()}`);
  mounted.push(at);
}

/** A deadline, not a delay. */
async function until(cond: () => boolean, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(10);
  return cond();
}

type Marks = {
  newMounts: number;
  newDirs: number;
  mountsMarked: string[];
  mountsUnmarked: { mountPoint: string; reason: string }[];
  dirMarks: number;
  existingFiles: number;
};
const serviceMarks = () => (agent.agent.status().sensors as { onAccess: { marks: Marks } }).onAccess.marks;
const detected = (path: string) =>
  events.some((e) => e.type === "scan-detection" && e.target === path && e.source === "on-access");

beforeAll(async () => {
  if (!isRoot) return;
  vendor = await makeVendor();
  await vendor.release("DatasetA", 1, { "main.ndb": `T.Mark:0:*:${hex("outpost-mark-one")}\n` });
  agent = await startAgent(vendor, {
    registry: defaultRegistry,
    config: { onAccess: { enabled: true, mode: "block", paths: [watched], timeoutMs: 3000 } },
  });
  await agent.agent.update();
  agent.agent.events.subscribe((e) => events.push(e));
  const ctx = { config: agent.agent.config, api: agent.agent, events: agent.agent.events };
  services.push(sensorsService(ctx), scanningService(ctx), onAccessService(ctx));
  for (const s of services) await s.start();
});

afterAll(async () => {
  // Lazy detach, deepest first: a failed test must not leave a mount behind, even a busy one.
  for (const at of mounted.reverse()) Bun.spawnSync(["umount", "-l", at]);
  for (const s of services.reverse()) await s.stop();
  await agent?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

describe.if(isRoot)("on-access marks follow new mounts and directories (block mode)", () => {
  test("a tmpfs mounted under the path after start is marked: its signature file is refused", async () => {
    const at = join(watched, "shm");
    const before = serviceMarks().newMounts;
    await mount(["-t", "tmpfs", "-o", "size=4m", "tmpfs"], at);
    expect(await until(() => serviceMarks().mountsMarked.includes(at))).toBe(true);
    expect(serviceMarks().newMounts).toBe(before + 1);
    const bad = join(at, "dropped.sh");
    expect((await sh(`printf '${PAYLOAD}' | tee ${bad} > /dev/null`)).code).toBe(0);
    const r = await sh(`cat ${bad}`);
    expect(r.stderr).toContain("Operation not permitted");
    expect(await until(() => detected(bad))).toBe(true);
    writeFileSync(join(at, "clean.txt"), "hello");
    expect((await sh(`cat ${join(at, "clean.txt")}`)).code).toBe(0);
    // Unmounted and at once another mounted elsewhere (the kernel reuses the mount id, and both
    // changes may fold into one reread): the old one forgotten, the new one marked.
    // Both synchronously, so the agent cannot reread the table between them.
    const at2 = join(watched, "shm2");
    mkdirSync(at2);
    expect(Bun.spawnSync(["umount", at]).exitCode).toBe(0);
    mounted.splice(mounted.indexOf(at), 1);
    const second = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", at2]);
    expect(second.exitCode).toBe(0);
    mounted.push(at2);
    expect(await until(() => !serviceMarks().mountsMarked.includes(at))).toBe(true);
    expect(await until(() => serviceMarks().mountsMarked.includes(at2))).toBe(true);
    const bad2 = join(at2, "again.sh");
    expect((await sh(`printf '${PAYLOAD}' | tee ${bad2} > /dev/null`)).code).toBe(0);
    expect((await sh(`cat ${bad2}`)).stderr).toContain("Operation not permitted");
  });

  test("a directory created after start, and a tree moved in from outside, are marked and walked", async () => {
    const n0 = serviceMarks().newDirs;
    const made = join(watched, "made-later");
    expect((await sh(`mkdir ${made}`)).code).toBe(0);
    expect(await until(() => serviceMarks().newDirs > n0)).toBe(true);
    const bad = join(made, "x.bin");
    expect((await sh(`printf '${PAYLOAD}' | tee ${bad} > /dev/null`)).code).toBe(0);
    expect((await sh(`cat ${bad}`)).stderr).toContain("Operation not permitted");

    // Built outside the marked tree (nothing scanned it), then moved in whole.
    const tree = join(outside, "tree");
    mkdirSync(join(tree, "deep", "er"), { recursive: true });
    writeFileSync(join(tree, "deep", "er", "payload.txt"), PAYLOAD);
    const n1 = serviceMarks().newDirs;
    expect((await sh(`mv ${tree} ${watched}/`)).code).toBe(0);
    const moved = join(watched, "tree", "deep", "er", "payload.txt");
    expect(await until(() => serviceMarks().newDirs > n1)).toBe(true);
    // Walked on arrival: found and reported before anyone opened it, then refused on open.
    expect(await until(() => detected(moved))).toBe(true);
    expect((await sh(`cat ${moved}`)).stderr).toContain("Operation not permitted");
  });

  test("a pseudo filesystem under the path is skipped and reported, the tree walk does not enter it", async () => {
    const at = join(watched, "mq");
    await mount(["-t", "mqueue", "mqueue"], at);
    expect(
      await until(() =>
        serviceMarks().mountsUnmarked.some((m) => m.mountPoint === at && m.reason.startsWith("mqueue:")),
      ),
    ).toBe(true);
    expect(serviceMarks().mountsMarked).not.toContain(at);
    expect(readMounts().some((m) => m.mountPoint === at && m.fsType === "mqueue")).toBe(true);
  });
});

describe.if(isRoot)("on-access marks follow new mounts and directories (detect mode)", () => {
  test("a new tmpfs, a new directory and a moved-in tree: each signature file is reported", async () => {
    const dir = mkdtempSync(join(root, "detect-"));
    const { sensor } = detectModeSensor(agent.agent, agent.stateDir, dir);
    expect(sensor.start()).toBeUndefined();
    const marks = () => sensor.marking() as unknown as Marks;
    try {
      const at = join(dir, "tmp");
      await mount(["-t", "tmpfs", "-o", "size=4m", "tmpfs"], at);
      expect(await until(() => marks().mountsMarked.includes(at))).toBe(true);
      const inMount = join(at, "drop.txt");
      expect((await sh(`printf '${PAYLOAD}' | tee ${inMount} > /dev/null`)).code).toBe(0);
      expect(await until(() => detected(inMount))).toBe(true);

      // Created and written at once by one shell: the mark races the write, the walk covers it.
      const made = join(dir, "made", "sub");
      const inDir = join(made, "drop.txt");
      expect((await sh(`mkdir -p ${made} && printf '${PAYLOAD}' | tee ${inDir} > /dev/null`)).code).toBe(0);
      expect(await until(() => detected(inDir))).toBe(true);

      const tree = join(outside, "detect-tree");
      mkdirSync(join(tree, "a"), { recursive: true });
      writeFileSync(join(tree, "a", "payload.txt"), PAYLOAD);
      expect((await sh(`mv ${tree} ${dir}/`)).code).toBe(0);
      expect(await until(() => detected(join(dir, "detect-tree", "a", "payload.txt")))).toBe(true);
      expect(marks().existingFiles).toBeGreaterThanOrEqual(1);
    } finally {
      await sensor.stop();
    }
  });
});
