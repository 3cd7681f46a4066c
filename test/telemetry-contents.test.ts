/**
 * What a telemetry report says about scanning and the kernel sensors, from
 * the real parts: an agent with signed DatasetA and TELEMSUP installed by an
 * update cycle, the sensor service (file sensor on a temp dir), the scan
 * service, an on-access scanner deciding opens of real files (the fanotify
 * side is handlers/DatasetA/on-access.test.ts), and the telemetry service
 * building its report from GET /metrics. Counts and durations arrive, by
 * mode and outcome; no path, file name or signature name does.
 *
 * The metrics registry is process-wide and cumulative, so every figure is
 * the difference between a report built before and one built after.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { metrics } from "../core/metrics.ts";
import { sensorsOf, sensorsService } from "../core/sensors/service.ts";
import { OnAccessSchema } from "../core/sensors-config.ts";
import type { TelemetryReport } from "../core/telemetry/report-schema.ts";
import { OnAccessScanner } from "../handlers/DatasetA/on-access.ts";
import { scanningService, scanRuntimeOf } from "../handlers/DatasetA/scan/runtime.ts";
import { defaultRegistry } from "../handlers/index.ts";
import { pickMetrics } from "../handlers/TELEMSUP/report.ts";
import { TelemetryService } from "../handlers/TELEMSUP/service.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "./fixtures/vendor.ts";

setDefaultTimeout(60_000);
const hex = (s: string) => Buffer.from(s).toString("hex");

const root = mkdtempSync(join(tmpdir(), "outpost-telemetry-contents-"));
const watched = join(root, "watched");
const onDemand = join(root, "on-demand");
mkdirSync(watched);
mkdirSync(onDemand);

let vendor: Vendor;
let t: TestAgent;
let svc: TelemetryService;
const services: { start(): unknown; stop(): unknown }[] = [];

/** A deadline, not a delay: sensor events arrive within ms on a quiet box, seconds on a loaded one. */
async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** One series of GET /metrics now, through the report's own picker (labels as the report carries them). */
function current(name: string, labels: Record<string, string>): number {
  return value({ metrics: pickMetrics(metrics.render()) }, name, labels);
}

/** The value of one metric row of a report (0 when absent). */
function value(r: Pick<TelemetryReport, "metrics">, name: string, labels: Record<string, string>): number {
  const row = r.metrics.find(
    (m) =>
      m.name === name &&
      Object.keys(m.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => m.labels[k] === v),
  );
  return row?.value ?? 0;
}

beforeAll(async () => {
  vendor = await makeVendor();
  await vendor.release("DatasetA", 1, { "main.ndb": `T.Mark:0:*:${hex("outpost-mark-one")}\n` });
  await vendor.release("TELEMSUP", 1, {
    "telemsup.json": JSON.stringify({
      port: 0,
      resourceRoot: "t",
      server: "telemetry.outpost.example",
      verb: "POST",
      interval: 3600,
    }),
  });
  t = await startAgent(vendor, {
    registry: defaultRegistry,
    config: {
      hosts: { isolation: "in-process" },
      // Polling every minute and no nftables rule: the events counted here are the file sensor's.
      sensors: { process: "poll", pollIntervalMs: 60_000, network: "off", files: { paths: [watched] } },
      telemetry: { enabled: true, allowedServers: ["telemetry.outpost.example"] },
    },
  });
  const installed = (await t.agent.update()).installed.map((i) => i.type).sort();
  expect(installed).toEqual(["DatasetA", "TELEMSUP"]);
  const ctx = { config: t.agent.config, api: t.agent, events: t.agent.events };
  services.push(sensorsService(ctx), scanningService(ctx));
  for (const s of services) await s.start();
  svc = new TelemetryService({
    agent: t.agent,
    config: t.agent.config,
    // Nothing leaves the machine: the report is read from what reportNow() returns.
    fetchImpl: (async () => new Response(null, { status: 201 })) as unknown as typeof fetch,
  });
  svc.start();
  expect((await svc.refresh())?.url).toStartWith("https://telemetry.outpost.example/t/");
});

afterAll(async () => {
  await svc?.stop();
  for (const s of services.reverse()) await s.stop();
  await t?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

test("sensor events and drops, on-access outcomes and scan durations by mode: counts and durations, no paths", async () => {
  const before = await svc.reportNow();
  const bus = sensorsOf(t.agent)?.bus;
  expect(bus).toBeDefined();
  // A consumer that never finishes a batch and queues one event: of five writes it drops at least three.
  const unsubscribe = bus!.subscribe({
    name: "stuck-consumer",
    types: ["file.write"],
    deliver: () => new Promise(() => {}),
    maxQueue: 1,
  });
  const written = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"].map((name, i) => {
    const path = join(watched, name);
    writeFileSync(path, i === 0 ? "payload outpost-mark-one here" : `clean file ${i}`);
    return path;
  });
  const since = (name: string, labels: Record<string, string>) =>
    current(name, labels) - value(before, name, labels);
  await until(
    "the file sensor's writes and the stuck consumer's drops",
    () =>
      since("outpost_sensor_events_total", { type: "file.write" }) >= written.length &&
      since("outpost_sensor_events_dropped_total", { consumer: "stuck-consumer" }) >= written.length - 2,
  );
  unsubscribe();

  // On demand: three files, one object each.
  for (const [i, body] of ["one", "two outpost-mark-one", "three"].entries())
    writeFileSync(join(onDemand, `f${i}.bin`), body);
  const runtime = scanRuntimeOf(t.agent);
  expect(runtime).toBeDefined();
  const scan = await runtime!.service.scanPaths([onDemand]);
  expect({ objects: scan.objects, found: scan.found }).toEqual({ objects: 3, found: true });

  // On access: the marked file is refused (scanned, blocked), a clean one scanned once then answered from the cache.
  const onAccess = new OnAccessScanner({
    config: OnAccessSchema.parse({ enabled: true, mode: "block", paths: [watched] }),
    stateDir: t.stateDir,
    service: runtime!.service,
    call: (type, method, args) => t.agent.call(type, method, args),
    emit: () => {},
    // Exact per-decision counts: no background read-ahead of the directory's other files.
    readAhead: false,
  });
  const decide = async (path: string) => {
    const fd = openSync(path, "r");
    try {
      return await onAccess.decide({ fd, pid: 1, path, kind: "open", permission: true });
    } finally {
      closeSync(fd);
    }
  };
  expect(await decide(written[0]!)).toBe(false);
  expect(await decide(written[1]!)).toBe(true);
  expect(await decide(written[1]!)).toBe(true);

  const after = await svc.reportNow();
  const delta = (name: string, labels: Record<string, string>) =>
    value(after, name, labels) - value(before, name, labels);
  const onDemandFile = { mode: "on-demand", target: "file" };
  const onAccessFile = { mode: "on-access", target: "file" };
  expect({
    onDemandCount: delta("outpost_scan_duration_seconds_count", onDemandFile),
    onDemandInf: delta("outpost_scan_duration_seconds_bucket", { ...onDemandFile, le: "+Inf" }),
    onAccessCount: delta("outpost_scan_duration_seconds_count", onAccessFile),
    scanned: delta("outpost_onaccess_files_total", { outcome: "scanned" }),
    cacheHits: delta("outpost_onaccess_files_total", { outcome: "cache-hit" }),
    blocked: delta("outpost_onaccess_files_total", { outcome: "blocked" }),
    detected: delta("outpost_onaccess_files_total", { outcome: "detected" }),
  }).toEqual({
    onDemandCount: 3,
    onDemandInf: 3,
    onAccessCount: 2,
    scanned: 2,
    cacheHits: 1,
    blocked: 1,
    detected: 1,
  });
  // Durations are real measurements: positive, and the buckets are cumulative up to the count.
  expect(delta("outpost_scan_duration_seconds_sum", onDemandFile)).toBeGreaterThan(0);
  expect(delta("outpost_scan_duration_seconds_sum", onAccessFile)).toBeGreaterThan(0);
  const bounds = after.metrics
    .filter((m) => m.name === "outpost_scan_duration_seconds_bucket" && m.labels.mode === "on-demand")
    .filter((m) => m.labels.target === "file")
    .map((m) => [m.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(m.labels.le), m.value] as const)
    .sort((a, b) => a[0] - b[0]);
  expect(bounds.length).toBe(15);
  for (let i = 1; i < bounds.length; i++) expect(bounds[i]![1]).toBeGreaterThanOrEqual(bounds[i - 1]![1]);

  // Counts and durations only: no path, file or directory name, signature name or host name.
  const json = JSON.stringify(after);
  for (const secret of [root, "watched", "on-demand/", "a.txt", "f1.bin", "T.Mark", "outpost-mark-one"])
    expect({ secret, found: json.includes(secret) }).toEqual({ secret, found: false });
  const keys = new Set(
    after.metrics
      .filter((m) => /^outpost_(scan_duration|onaccess|sensor_events)/.test(m.name))
      .flatMap((m) => Object.keys(m.labels)),
  );
  expect([...keys].sort()).toEqual(["consumer", "le", "mode", "outcome", "target", "type"]);
});
