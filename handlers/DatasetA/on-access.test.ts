/**
 * On-access scanning end to end, against the real kernel (root): signed
 * DatasetA and LocalRepData content installed by a real agent whose
 * scanner runs in its own host process, the services `agent run` starts,
 * and fanotify marks on a temp dir this test creates (inode marks: no
 * file outside it can be blocked, whatever runs beside this suite).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../../core/agent/events.ts";
import { SharedTransfer } from "../../core/host/shared-transfer.ts";
import { AccessSensor } from "../../core/sensors/access.ts";
import { sensorsService } from "../../core/sensors/service.ts";
import { OnAccessSchema } from "../../core/sensors-config.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { defaultRegistry } from "../index.ts";
import { buildReputation, tableFromEntries } from "../LocalRepData/writer.ts";
import { OnAccessScanner } from "./on-access.ts";
import { onAccessService } from "./on-access-service.ts";
import { detectModeSensor } from "./on-access-testkit.ts";
import { scanningService } from "./scan/runtime.ts";
import type { ScanService } from "./scan/service.ts";

setDefaultTimeout(60_000);
const isRoot = process.getuid?.() === 0;
const hex = (s: string) => Buffer.from(s).toString("hex");
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

const root = mkdtempSync(join(tmpdir(), "outpost-onaccess-"));
const watched = join(root, "watched");
const excluded = join(watched, "excluded");
mkdirSync(excluded, { recursive: true });
const TRUSTED = "a vendor tool that happens to say outpost-mark-one";
const TIMEOUT_MS = 3000;

let vendor: Vendor;
let agent: TestAgent;
const events: AgentEvent[] = [];
const services: { start(): unknown; stop(): unknown }[] = [];

/** Runs a shell command as a grandchild (our direct children count as the agent's own processes). */
async function sh(cmd: string): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = performance.now();
  const p = Bun.spawn(["sh", "-c", cmd], { stdout: "ignore", stderr: "pipe" });
  const code = await p.exited;
  return { code, stderr: await new Response(p.stderr).text(), ms: performance.now() - t0 };
}

/** A deadline, not a delay: a scan in the scanner host is ms quiet, seconds beside a second copy of the suite. */
async function until(cond: () => boolean, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(10);
  return cond();
}

const onAccessStatus = () =>
  (agent.agent.status().sensors as { onAccess: Record<string, number | string> }).onAccess;

beforeAll(async () => {
  if (!isRoot) return;
  vendor = await makeVendor();
  await vendor.release("DatasetA", 1, { "main.ndb": `T.Mark:0:*:${hex("outpost-mark-one")}\n` });
  const rep = buildReputation(
    tableFromEntries([{ sha256: sha(TRUSTED), score: 95, class: "application" }], false),
    tableFromEntries([], true),
  );
  await vendor.release("LocalRepData", 1, { "reputation.bin": rep.bytes });
  agent = await startAgent(vendor, {
    registry: defaultRegistry,
    config: {
      onAccess: {
        enabled: true,
        mode: "block",
        paths: [watched],
        excludePaths: [excluded],
        timeoutMs: TIMEOUT_MS,
      },
    },
  });
  const report = await agent.agent.update();
  expect(report.installed.map((i) => i.type).sort()).toEqual(["DatasetA", "LocalRepData"]);
  agent.agent.events.subscribe((e) => events.push(e));
  const ctx = { config: agent.agent.config, api: agent.agent, events: agent.agent.events };
  services.push(sensorsService(ctx), scanningService(ctx), onAccessService(ctx));
  for (const s of services) await s.start();
});

afterAll(async () => {
  for (const s of services.reverse()) await s.stop();
  await agent?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

describe.if(isRoot)("on-access scanning (fanotify, block mode)", () => {
  test("a file written after start is refused with EPERM and reported as an on-access detection", async () => {
    const bad = join(watched, "dropped.txt");
    // Writing is allowed (the file is empty when opened); reading what was written is not.
    expect((await sh(`printf 'payload outpost-mark-one here' > ${bad}`)).code).toBe(0);
    const r = await sh(`cat ${bad}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Operation not permitted");
    expect(await until(() => events.some((e) => e.type === "scan-detection" && e.target === bad))).toBe(true);
    expect(events.find((e) => e.type === "scan-detection" && e.target === bad)).toMatchObject({
      source: "on-access",
      name: "T.Mark",
      verdict: "malware",
    });
    expect(events.some((e) => e.type === "on-access-blocked" && e.path === bad)).toBe(true);
    // Again: answered from the verdict cache, still refused.
    const before = Number(onAccessStatus().cacheHits);
    expect((await sh(`cat ${bad}`)).code).not.toBe(0);
    expect(Number(onAccessStatus().cacheHits)).toBeGreaterThan(before);
    // Rewritten clean: a new (mtime, ctime, size) key, scanned again, allowed.
    writeFileSync(bad, "nothing here now");
    expect((await sh(`cat ${bad}`)).code).toBe(0);
  });

  test("clean files open; high-reputation and excluded files are never refused", async () => {
    writeFileSync(join(watched, "clean.txt"), "hello");
    expect((await sh(`cat ${join(watched, "clean.txt")}`)).code).toBe(0);
    writeFileSync(join(watched, "trusted.bin"), TRUSTED);
    expect((await sh(`cat ${join(watched, "trusted.bin")}`)).code).toBe(0);
    writeFileSync(join(excluded, "x.txt"), "outpost-mark-one");
    expect((await sh(`cat ${join(excluded, "x.txt")}`)).code).toBe(0);
    const s = onAccessStatus();
    expect(Number(s.highReputation)).toBeGreaterThanOrEqual(1);
    expect(Number(s.excluded)).toBeGreaterThanOrEqual(1);
    expect(s).toMatchObject({ sensor: "fanotify", mode: "block" });
    expect(Number(s.cacheHitRate)).toBeGreaterThan(0);
  });

  test("a clean file opened again unchanged raises no event (kernel ignore mark), an exec of it is answered on the sensor's thread; a changed one is scanned", async () => {
    const f = join(watched, "again.txt");
    writeFileSync(f, "true\n");
    chmodSync(f, 0o755);
    expect((await sh(`cat ${f}`)).code).toBe(0);
    const kernel = () =>
      onAccessStatus().kernel as unknown as { cacheAllowed: number; events: number; ignoreMarks: number };
    const before = { ...kernel(), scanned: Number(onAccessStatus().scanned) };
    expect(before.ignoreMarks).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 3; i++) expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(kernel()).toMatchObject({ cacheAllowed: before.cacheAllowed, events: before.events });
    // Execs are kept out of the ignore mask (see core/sensors/ignore-marks.ts): the AllowCache answers.
    for (let i = 0; i < 3; i++) expect((await sh(f)).code).toBe(0);
    expect(kernel().cacheAllowed).toBe(before.cacheAllowed + 3);
    expect(Number(onAccessStatus().scanned)).toBe(before.scanned);
    // Same size, new bytes: mtime and ctime move, so the sensor's cache misses and the file is scanned.
    writeFileSync(f, "outpost-mark-one");
    expect((await sh(`cat ${f}`)).code).not.toBe(0);
    expect(Number(onAccessStatus().scanned)).toBe(before.scanned + 1);
  });

  test("a file found clean is refused after a DatasetA update that detects it (verdicts forgotten)", async () => {
    const f = join(watched, "later.txt");
    writeFileSync(f, "innocent until outpost-mark-two exists");
    expect((await sh(`cat ${f}`)).code).toBe(0);
    // Cached clean, in the kernel's ignore cache too: the second open raises no event at all.
    const kernel = () => onAccessStatus().kernel as unknown as { cacheAllowed: number; events: number };
    const seen = () => kernel().events + kernel().cacheAllowed;
    const before = seen();
    expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(seen()).toBe(before);
    await vendor.release("DatasetA", 2, {
      "main.ndb": `T.Mark:0:*:${hex("outpost-mark-one")}\nT.Mark2:0:*:${hex("outpost-mark-two")}\n`,
    });
    const report = await agent.agent.update();
    expect(report.installed.map((i) => i.type)).toEqual(["DatasetA"]);
    const r = await sh(`cat ${f}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Operation not permitted");
    expect(
      await until(() =>
        events.some((e) => e.type === "scan-detection" && e.target === f && e.name === "T.Mark2"),
      ),
    ).toBe(true);
    expect(
      Number((onAccessStatus().kernel as unknown as { ignoreMarksFlushes: number }).ignoreMarksFlushes),
    ).toBe(1);
  });

  test("a directory read file after file is read ahead in batches; a detection in it is still refused", async () => {
    // In the marked dir itself: a subdirectory made now would not be marked (inode marks, see access.ts).
    const N = 120;
    const name = (i: number) => join(watched, `seq-${i}`);
    for (let i = 0; i < N; i++)
      writeFileSync(name(i), i === 90 ? "bad outpost-mark-one bytes" : `clean ${i}\n`);
    const s0 = onAccessStatus();
    const r = await sh(`find ${watched} -maxdepth 1 -type f -name 'seq-*' -exec cat {} + > /dev/null`);
    const s1 = onAccessStatus();
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toEqual([`cat: ${name(90)}: Operation not permitted`]);
    const delta = (k: string) => Number(s1[k]) - Number(s0[k]);
    // Each file once, whether read ahead or opened; read-ahead may also take the earlier tests' files.
    const others = readdirSync(watched).filter((n) => !n.startsWith("seq-")).length;
    expect(delta("scanned")).toBeGreaterThanOrEqual(N);
    expect(delta("scanned")).toBeLessThanOrEqual(N + others);
    expect(delta("readAhead")).toBeGreaterThan(N / 2);
    expect(delta("batches")).toBeLessThan(N / 4);
    expect(delta("blocked")).toBe(1);
    const detections = events.filter((e) => e.type === "scan-detection" && e.target === name(90));
    expect(detections).toHaveLength(1);
    expect(detections[0]).toMatchObject({ source: "on-access", name: "T.Mark" });
  });

  test("a file outside the marked dir is never seen", async () => {
    const outside = join(root, "outside.txt");
    writeFileSync(outside, "outpost-mark-one");
    expect((await sh(`cat ${outside}`)).code).toBe(0);
    expect(events.some((e) => e.type === "scan-detection" && e.target === outside)).toBe(false);
  });

  test("the scanner host crashing while an open waits: the open is allowed within timeoutMs (fail-open)", async () => {
    const big = join(watched, "big.bin");
    // Under the 8 MiB chunk size: one scan call in flight when the host dies.
    const bytes = Buffer.alloc(7 * 1024 * 1024, 0x41);
    Buffer.from("outpost-mark-one").copy(bytes, bytes.length - 100);
    writeFileSync(big, bytes);
    const failOpenBefore = Number(onAccessStatus().failOpen);
    const scanner = agent.agent.hosts().find((h) => h.group === "scanner");
    expect(scanner?.pid).toBeGreaterThan(0);
    // Stopped first, so the scan cannot finish (and refuse the marked file) before the kill: on a
    // loaded machine the status polls below took longer than the scan, and the open got EPERM.
    process.kill(scanner!.pid!, "SIGSTOP");
    const cat = sh(`cat ${big}`);
    expect(
      await until(() => Number((onAccessStatus().kernel as unknown as { pending: number }).pending) > 0),
    ).toBe(true);
    process.kill(scanner!.pid!, "SIGKILL");
    const r = await cat;
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + 2000);
    expect(Number(onAccessStatus().failOpen)).toBeGreaterThan(failOpenBefore);
  });
});

describe.if(isRoot)("on-access scanning, detect mode and faults", () => {
  test("detect: a file is scanned when its writer closes it, without `agent scan`; nothing is refused", async () => {
    const dir = mkdtempSync(join(root, "detect-"));
    const { sensor } = detectModeSensor(agent.agent, agent.stateDir, dir);
    expect(sensor.start()).toBeUndefined();
    try {
      const f = join(dir, "new.txt");
      expect((await sh(`printf 'x outpost-mark-one' | tee ${f} > /dev/null`)).code).toBe(0);
      expect(
        await until(() =>
          events.some((e) => e.type === "scan-detection" && e.target === f && e.source === "on-access"),
        ),
      ).toBe(true);
      expect((await sh(`cat ${f}`)).code).toBe(0);
    } finally {
      await sensor.stop();
    }
  });

  test("a decision that never comes is answered ALLOW at timeoutMs; one that throws at once", async () => {
    const dir = mkdtempSync(join(root, "hang-"));
    writeFileSync(join(dir, "a"), "a");
    writeFileSync(join(dir, "b"), "b");
    const sensor = new AccessSensor({
      mode: "block",
      paths: [dir],
      timeoutMs: 300,
      decide: (ev) =>
        ev.path.endsWith("/a") ? new Promise<boolean>(() => {}) : Promise.reject(new Error("boom")),
    });
    expect(sensor.start()).toBeUndefined();
    try {
      const a = await sh(`cat ${join(dir, "a")}`);
      expect(a.code).toBe(0);
      expect(a.ms).toBeGreaterThanOrEqual(250);
      expect((await sh(`cat ${join(dir, "b")}`)).code).toBe(0);
      expect(sensor.stats()).toMatchObject({ timeouts: 1, failOpen: 2 });
    } finally {
      await sensor.stop();
    }
  });
});

describe("verdict cache and changing files (no kernel needed)", () => {
  const config = OnAccessSchema.parse({ enabled: true, mode: "block", paths: ["/"] });
  // A real transfer region, as the scanner host has: files are read into leases, which must all come back.
  const region = SharedTransfer.create(1024 * 1024, "outpost-test")!;
  const inRegion: boolean[] = [];
  const fakeService = (onScan: (bytes: Uint8Array) => void, detect: (bytes: Uint8Array) => boolean) =>
    ({
      lease: (n: number) => region.lease(n),
      scanBytesMany: async (items: { bytes: Uint8Array }[]) =>
        items.map(({ bytes }) => {
          inRegion.push(region.owns(bytes));
          onScan(bytes);
          const hit = detect(bytes);
          return { detections: hit ? [{ name: "T.Fake", verdict: "malware", sha256: "x" }] : [] };
        }),
    }) as unknown as ScanService;

  test("a file that changes while it is scanned is scanned again and never cached clean", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-oa-unit-"));
    const f = join(dir, "f");
    writeFileSync(f, "v0");
    let scans = 0;
    const scanner = new OnAccessScanner({
      config,
      stateDir: "/nonexistent-state",
      service: fakeService(
        () => {
          scans++;
          // A writer appends during every scan: the (mtime, ctime, size) key moves each time.
          writeFileSync(f, `v${scans}`.repeat(scans + 1));
        },
        () => false,
      ),
      call: async () => {
        throw new Error("no LocalRepData");
      },
      emit: () => {},
    });
    const fd = openSync(f, "r");
    try {
      expect(await scanner.decide({ fd, pid: 1, path: f, kind: "open", permission: true })).toBe(true);
    } finally {
      closeSync(fd);
    }
    expect(scans).toBe(3);
    expect(scanner.stats()).toMatchObject({ changedDuringScan: 3, cacheEntries: 0 });
    // Each attempt read the file into the transfer region and gave the lease back once judged.
    expect(inRegion.slice(-3)).toEqual([true, true, true]);
    expect(region.available).toBe(region.size);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a detection found while the file was changing stands (block: refused)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-oa-unit-"));
    const f = join(dir, "f");
    writeFileSync(f, "EVIL");
    const scanner = new OnAccessScanner({
      config,
      stateDir: "/nonexistent-state",
      service: fakeService(
        () => writeFileSync(f, "now clean, longer"),
        (b) => new TextDecoder().decode(b) === "EVIL",
      ),
      call: async () => [{ band: "unknown" }],
      emit: () => {},
    });
    const fd = openSync(f, "r");
    try {
      expect(await scanner.decide({ fd, pid: 1, path: f, kind: "open", permission: true })).toBe(false);
    } finally {
      closeSync(fd);
    }
    expect(scanner.stats()).toMatchObject({ blocked: 1, cacheEntries: 0 });
    expect(region.available).toBe(region.size);
    rmSync(dir, { recursive: true, force: true });
  });

  test("the scanning service is looked up per decision: after a rebuild the new one scans", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-oa-unit-"));
    const f = join(dir, "f");
    writeFileSync(f, "EVIL");
    const scans: string[] = [];
    const named = (name: string) =>
      fakeService(
        () => scans.push(name),
        () => false,
      );
    let current: ScanService | undefined = named("old");
    const scanner = new OnAccessScanner({
      config,
      stateDir: "/nonexistent-state",
      service: () => current,
      call: async () => [],
      emit: () => {},
    });
    const fd = openSync(f, "r");
    try {
      expect(await scanner.decide({ fd, pid: 1, path: f, kind: "open", permission: true })).toBe(true);
      // Mid-rebuild there is none: the decision fails open (the sensor allows a rejected decision).
      current = undefined;
      writeFileSync(f, "EVIL again");
      await expect(scanner.decide({ fd, pid: 1, path: f, kind: "open", permission: true })).rejects.toThrow(
        "restarting",
      );
      current = named("new");
      expect(await scanner.decide({ fd, pid: 1, path: f, kind: "open", permission: true })).toBe(true);
    } finally {
      closeSync(fd);
    }
    expect(scans).toEqual(["old", "new"]);
    // The failed decision (no service) leased nothing it kept.
    expect(region.available).toBe(region.size);
    rmSync(dir, { recursive: true, force: true });
  });

  test("an unchanged file is scanned once; the state dir and excludePaths are never scanned", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-oa-unit-"));
    const f = join(dir, "f");
    writeFileSync(f, "fine");
    let scans = 0;
    const scanner = new OnAccessScanner({
      config: { ...config, excludePaths: [join(dir, "skip")] },
      stateDir: join(dir, "state"),
      service: fakeService(
        () => scans++,
        () => false,
      ),
      call: async () => [],
      emit: () => {},
    });
    const fd = openSync(f, "r");
    try {
      for (let i = 0; i < 5; i++)
        expect(await scanner.decide({ fd, pid: 1, path: f, kind: "open", permission: true })).toBe(true);
      expect(
        await scanner.decide({ fd, pid: 1, path: join(dir, "state/x"), kind: "open", permission: true }),
      ).toBe(true);
      expect(
        await scanner.decide({ fd, pid: 1, path: join(dir, "skip/y"), kind: "open", permission: true }),
      ).toBe(true);
    } finally {
      closeSync(fd);
    }
    expect(scans).toBe(1);
    expect(scanner.stats()).toMatchObject({ cacheHits: 4, cacheHitRate: 0.8, excluded: 2 });
    rmSync(dir, { recursive: true, force: true });
  });
});
