/**
 * `agent scan --json` through a running agent and offline on the same state
 * dir: the same report either way, and `via` says which path scanned
 * (docs/cli.md). The offline run is the one-shot path whose supervisor
 * knows handlers by manifest only (handlers/manifests.ts): its scanner host
 * still finds what the running agent's finds, and starts no host but the
 * scanner's although another group's content is installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "../../../core/control/server.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../../test/fixtures/vendor.ts";
import { defaultRegistry } from "../../index.ts";
import { scanRoutes } from "./routes.ts";
import { attachScanRuntime, createScanRuntime } from "./runtime.ts";
import type { ScanReport } from "./service.ts";

const hex = (s: string) => Buffer.from(s).toString("hex");
const root = mkdtempSync(join(tmpdir(), "outpost-scan-via-"));
const files = join(root, "files");
mkdirSync(files);
writeFileSync(join(files, "mark.txt"), "before outpost-via-mark after");
writeFileSync(join(files, "clean.txt"), "nothing to find here\n".repeat(200));

let vendor: Vendor;
let agent: TestAgent;
let plane: ControlPlane | undefined;
let detach: (() => void) | undefined;

beforeAll(async () => {
  vendor = await makeVendor();
  await vendor.release("DatasetA", 1, { "main.ndb": `T.ViaMark:0:*:${hex("outpost-via-mark")}\n` });
  // Content of other host groups, installed beside: an offline scan must not start their hosts —
  // neither telemetry's nor config's (Flags contributes to the effective config, which an offline
  // scan takes as the last agent applied it).
  const example = (type: string, file: string) =>
    readFileSync(join(import.meta.dir, "../../../examples", type, file), "utf8");
  await vendor.release("TELEMSUP", 1, { "telemsup.json": example("TELEMSUP", "telemsup.json") });
  await vendor.release("Flags", 1, { "flags.json": example("Flags", "flags.json") });
  agent = await startAgent(vendor, { registry: defaultRegistry });
  const report = await agent.agent.update();
  expect(report.installed.map((i) => i.type).sort()).toEqual(["DatasetA", "Flags", "TELEMSUP"]);
  const runtime = await createScanRuntime(
    { config: agent.agent.config, api: agent.agent, events: agent.agent.events },
    { background: false },
  );
  detach = attachScanRuntime(agent.agent, runtime);
  plane = await startControlPlane({
    api: agent.agent,
    stateDir: agent.stateDir,
    extensions: [scanRoutes()],
    events: agent.agent.events,
  });
}, 60_000);

afterAll(async () => {
  detach?.();
  await plane?.stop();
  await agent?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

async function scanJson(): Promise<{ code: number; report: ScanReport & { via: string } }> {
  const p = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "../../../bin/agent.ts"),
      "scan",
      "--json",
      "--state",
      agent.stateDir,
      files,
    ],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
  );
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0 && code !== 1) throw new Error(`agent scan exited ${code}: ${err}`);
  return { code, report: JSON.parse(out) };
}

/** The report without what differs by nature between two runs. */
const comparable = ({ durationMs: _d, via: _v, ...rest }: ScanReport & { via: string }) => rest;

describe("agent scan: via the running agent or offline, the same report", () => {
  test("running agent, then offline on the same state dir", async () => {
    const online = await scanJson();
    expect(online.code).toBe(1);
    expect(online.report.via).toBe("agent");
    expect(online.report.detections.map((d) => [d.name, d.target])).toEqual([
      ["T.ViaMark", join(files, "mark.txt")],
    ]);

    // The agent goes away (control plane first, then the lock): the next scan opens the state dir itself.
    detach?.();
    detach = undefined;
    await plane?.stop();
    plane = undefined;
    await agent.stop();

    // Host work dirs (one per host process) show which processes a run started: clear them, then scan
    // offline. The telemetry and config groups share the process "shared" (G3, handlers/groups.ts).
    const hostDir = (proc: string) => join(agent.stateDir, "hosts", proc);
    for (const proc of ["shared", "scanner"]) {
      expect([proc, existsSync(hostDir(proc))]).toEqual([proc, true]);
      rmSync(hostDir(proc), { recursive: true, force: true });
    }

    const effectiveState = join(agent.stateDir, "effective", "state.json");
    const appliedBefore = readFileSync(effectiveState, "utf8");
    expect(JSON.parse(appliedBefore)).toBeTruthy();

    const offline = await scanJson();
    expect(offline.code).toBe(1);
    expect(offline.report.via).toBe("offline");
    expect(comparable(offline.report)).toEqual(comparable(online.report));
    // The scanner's host ran; the telemetry and config groups' content was left alone.
    expect(existsSync(hostDir("scanner"))).toBe(true);
    expect(existsSync(hostDir("shared"))).toBe(false);
    expect(existsSync(hostDir("telemetry"))).toBe(false);
    expect(existsSync(hostDir("config"))).toBe(false);
    // The effective config the running agent applied is the one the offline scan kept: untouched.
    expect(readFileSync(effectiveState, "utf8")).toBe(appliedBefore);
  }, 60_000);
});
