/**
 * An ML model's whole release chain in one process, with real components
 * only: the fleet service (`serveRelease`: release engine, heartbeat
 * endpoint, telemetry receiver), a real agent (scanner host, signed
 * content, the scan requester, TELEMSUP telemetry, signed heartbeats), and
 * the example model (examples/MLModel/outpost-lr) packed by the vendor
 * fixtures. Issue 19, "Tests and benchmarks":
 *
 *   1. `release start` of the telemetry twin → the agent installs it, scans
 *      benign objects and synthetic droppers; verdicts are those of a scan
 *      without the model; its scores reach the fleet in a TELEMSUP upload
 *   2. the telemetry release completes on the agent's heartbeat; `release
 *      start` of the live twin is refused (REL_LIVE_GATE, T3) while the
 *      telemetry period is too short, and nothing is published
 *   3. the fleet clock (injected, no sleeps) passes minTelemetryMinutes: the
 *      live twin starts (T3 + T4 met by the uploaded scores), the agent
 *      installs it and the same droppers now produce detections of kind `ml`
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HeartbeatReporter, loadAgentId, startHeartbeat } from "../core/agent/heartbeat.ts";
import { enrollAgent } from "../core/agent/identity.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import { isOutpostError } from "../core/errors.ts";
import { readRepoIndex } from "../core/repo/publish.ts";
import { parseReleaseConfig, type ReleaseConfig } from "../fleet/config.ts";
import { type ReleaseServer, serveRelease } from "../fleet/server.ts";
import { TelemetryStore } from "../fleet/telemetry/store.ts";
import { createScanRuntime } from "../handlers/DatasetA/scan/runtime.ts";
import type { ScanReport } from "../handlers/DatasetA/scan/service.ts";
import { defaultRegistry } from "../handlers/index.ts";
import { synthetic } from "../handlers/MLModel/synthetic.ts";
import { TelemetryService } from "../handlers/TELEMSUP/service.ts";
import { makeVendor, startAgent, TEST_GROUP, type TestAgent, type Vendor } from "./fixtures/vendor.ts";

const EXAMPLE = join(import.meta.dir, "../examples/MLModel/outpost-lr");
const TOKEN = "tenant-token-ml-release-0123456789";
const MODEL = "outpost-lr";
const MIN_TELEMETRY_MINUTES = 60;

const root = mkdtempSync(join(tmpdir(), "outpost-ml-release-"));
const files = join(root, "files");
mkdirSync(files);
const put = (name: string, data: Uint8Array | string) => writeFileSync(join(files, name), data);
// Six synthetic droppers (seeds the training never used, as in handlers/MLModel/scan.test.ts) …
const DROPPERS: string[] = [];
for (const [i, f] of (["elf-dropper", "pe-packed", "sh-dropper"] as const).entries()) {
  for (const [suffix, seed] of [
    ["a", 9001 + i],
    ["b", 9101 + i],
  ] as const) {
    put(`${f}-${suffix}`, synthetic(f, seed));
    DROPPERS.push(`${f}-${suffix}`);
  }
}
// … six benign scripts (the model's `script` kind, so they are scored too), a signature hit and plain text.
const BENIGN_SCRIPTS: Record<string, string> = {
  "build.sh": "#!/bin/sh\nset -e\nbun install\nbun test\n",
  "backup.sh": '#!/bin/sh\nset -eu\ntar -czf "/var/backups/home-$(date +%F).tgz" /home\n',
  "lint.sh": "#!/bin/sh\nset -e\nbunx biome check .\nbunx tsc --noEmit -p .\n",
  "greet.py": '#!/usr/bin/env python3\nimport sys\nprint("hello", *sys.argv[1:])\n',
  "rotate.sh": "#!/bin/bash\nfind /var/log/app -name '*.log' -mtime +7 -delete\n",
  "serve.sh": "#!/bin/sh\nexec python3 -m http.server 8000 --bind 127.0.0.1\n",
};
for (const [name, text] of Object.entries(BENIGN_SCRIPTS)) put(name, text);
put("mark.txt", "a plain detection: outpost-mark-one");
put("README.md", readFileSync(join(import.meta.dir, "../README.md")));
const SCORED = DROPPERS.length + Object.keys(BENIGN_SCRIPTS).length;

// One clock for everything that judges or stamps time — the fleet service (engine, heartbeat endpoint,
// telemetry receiver), the agent (signing times it accepts), its heartbeats and reports, and the packages
// and indexes signed here — advanced by the test, never slept on.
let clock = Date.now();
const now = () => new Date(clock);

let vendor: Vendor;
let config: ReleaseConfig;
let server: ReleaseServer;
let agent: TestAgent;
let heartbeat: HeartbeatReporter | undefined;
let telemetry: TelemetryService;

/** The example model with its manifest's mode set, every object sampled. */
function payload(mode: "telemetry" | "live"): Record<string, Uint8Array | string> {
  const out: Record<string, Uint8Array | string> = {};
  for (const f of readdirSync(EXAMPLE)) out[`${MODEL}/${f}`] = readFileSync(join(EXAMPLE, f));
  const manifest = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8"));
  out[`${MODEL}/manifest.json`] = JSON.stringify({ ...manifest, mode, sampleRate: 1 });
  return out;
}

async function packageFile(version: number, mode: "telemetry" | "live"): Promise<string> {
  const file = join(root, `MLModel-${version}.tar`);
  await Bun.write(file, await vendor.pack("MLModel", version, payload(mode), { now: now() }));
  return file;
}

async function scan(): Promise<ScanReport> {
  const rt = await createScanRuntime(
    { config: agent.agent.config, api: agent.agent, events: agent.agent.events },
    { background: false },
  );
  return rt.service.scanPaths([files]);
}

const name = (d: { target: string }) => d.target.slice(files.length + 1);
const verdicts = (r: ScanReport) =>
  r.detections.map((d) => `${name(d)}:${d.name}:${d.kind}:${d.verdict}`).sort();

/** What the live gate reads: the fleet database the server stores telemetry in. */
async function evidence(since: string) {
  const store = new TelemetryStore((await server.engine.db()).driver);
  return { ...(await store.mlEvidence(MODEL, since)), reports: await store.count() };
}

beforeAll(async () => {
  vendor = await makeVendor();
  config = parseReleaseConfig(
    {
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: join(root, "fleet"),
      groups: [{ name: TEST_GROUP, promote: "manual", soakMinutes: 0 }],
      fleet: {
        tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)), group: TEST_GROUP } },
      },
      // Small gates, so a dozen scores from one agent can open them (the defaults ask for 3 days and 1000).
      types: {
        MLModel: {
          liveGate: { minTelemetryMinutes: MIN_TELEMETRY_MINUTES, minScores: SCORED, maxDetectionRate: 0.5 },
        },
      },
    },
    "release.json",
  );
  server = await serveRelease({ config, port: 0, autoTick: false, now });
  // Baseline content the fleet already has: a signature set, and telemetry pointed at this fleet service.
  await vendor.release(
    "DatasetA",
    1,
    {
      "main.ndb": `T.Mark:0:*:${Buffer.from("outpost-mark-one").toString("hex")}\n`,
    },
    { now: now() },
  );
  await vendor.release(
    "TELEMSUP",
    1,
    {
      "telemsup.json": JSON.stringify({
        port: server.port,
        resourceRoot: "telemetry/v1",
        server: "localhost",
        verb: "PUT",
        interval: 3600,
      }),
    },
    { now: now() },
  );
  agent = await startAgent(vendor, {
    registry: defaultRegistry,
    now,
    config: {
      fleet: { url: new URL("/fleet/heartbeat", server.url).href, tenant: "acme", token: TOKEN },
      telemetry: {
        enabled: true,
        allowedServers: [`http://localhost:${server.port}`],
        maxBackoffSeconds: 0.2,
      },
    },
  });
  await enrollAgent({ stateDir: agent.stateDir, fleet: server.url.href, tenant: "acme", token: TOKEN });
  heartbeat = await startHeartbeat(agent.agent, agent.agent.config, { now });
  expect((await agent.agent.update()).installed.map((i) => i.type).sort()).toEqual(["DatasetA", "TELEMSUP"]);
  telemetry = new TelemetryService({ agent: agent.agent, config: agent.agent.config, now, minBackoffMs: 5 });
  telemetry.start();
  expect((await telemetry.refresh())?.url).toBe(
    `http://localhost:${server.port}/telemetry/v1/${loadAgentId(agent.stateDir)}`,
  );
}, 120_000);

afterAll(async () => {
  await telemetry?.stop();
  await heartbeat?.stop();
  await agent?.stop();
  await server?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

test("telemetry twin → scores reach the fleet, verdicts unchanged → live twin gated, then detecting", async () => {
  const before = await scan();
  expect(verdicts(before)).toEqual(["mark.txt:T.Mark:body:malware"]);

  // 1. The telemetry twin, through `release start`: published to the agent's group at once.
  const t = await server.engine.start({
    type: "MLModel",
    version: 1,
    packageFile: await packageFile(1, "telemetry"),
  });
  expect(t.models).toEqual([{ name: MODEL, mode: "telemetry" }]);
  expect(readRepoIndex(vendor.repo, TEST_GROUP)?.content.MLModel?.version).toBe(1);
  expect((await agent.agent.update()).installed.map((i) => `${i.type}:${i.version}`)).toEqual(["MLModel:1"]);
  expect(agent.agent.content().find((c) => c.type === "MLModel")).toMatchObject({
    version: 1,
    handlerState: "loaded",
  });

  const withModel = await scan();
  expect(verdicts(withModel)).toEqual(verdicts(before));
  expect(withModel.found).toBe(before.found);
  // Every dropper was scored over the threshold, every benign script under it: telemetry only.
  expect(await agent.agent.call("MLModel", "models", {})).toMatchObject({
    version: 1,
    models: [{ name: MODEL, mode: "telemetry", scores: SCORED, over: DROPPERS.length, faults: 0 }],
  });

  // The scores travel in a TELEMSUP report, uploaded to the fleet service's receiver.
  clock += 60_000;
  const report = await telemetry.reportNow();
  const rows = report.metrics.filter((m) => m.name === "outpost_ml_scores_total");
  expect(rows).toEqual(
    expect.arrayContaining([
      {
        name: "outpost_ml_scores_total",
        labels: { model: MODEL, mode: "telemetry", band: "over" },
        value: DROPPERS.length,
      },
      {
        name: "outpost_ml_scores_total",
        labels: { model: MODEL, mode: "telemetry", band: "under" },
        value: SCORED - DROPPERS.length,
      },
    ]),
  );
  expect(await telemetry.flush(15_000)).toBe(true);
  expect(await evidence(t.startedAt)).toEqual({
    scores: SCORED,
    over: DROPPERS.length,
    agents: 1,
    reports: 1,
  });

  // 2. The agent's signed heartbeat shows v1 installed and healthy: the (one-group) release completes.
  await heartbeat?.flush(); // the one sent after the update cycle, so sequence numbers stay in order
  expect(await heartbeat?.send()).toBe(true);
  const tick = await server.tick();
  expect(tick.errors).toEqual([]);
  expect(tick.actions.map((a) => a.kind)).toEqual(["complete"]);

  // The live twin, too early: refused with the gate's reason; the group keeps the telemetry twin.
  const liveFile = await packageFile(2, "live");
  const startLive = () => server.engine.start({ type: "MLModel", version: 2, packageFile: liveFile });
  const refusal = await startLive().then(
    () => null,
    (e: unknown) => e,
  );
  expect(isOutpostError(refusal) && refusal.code).toBe("REL_LIVE_GATE");
  expect((refusal as Error).message).toContain(
    `T3 ${MODEL}: in telemetry since ${t.startedAt} (v1), 1 of 60 minutes`,
  );
  expect(readRepoIndex(vendor.repo, TEST_GROUP)?.content.MLModel?.version).toBe(1);
  expect((await agent.agent.update()).installed).toEqual([]);

  // 3. Past minTelemetryMinutes (the fleet clock, no sleep): the uploaded scores satisfy T4 and it starts.
  clock += MIN_TELEMETRY_MINUTES * 60_000;
  const live = await startLive();
  expect(live.models).toEqual([{ name: MODEL, mode: "live" }]);
  expect(live.groups[0]?.publishedAt).toBe(now().toISOString());
  expect((await agent.agent.update()).installed.map((i) => `${i.type}:${i.version}`)).toEqual(["MLModel:2"]);

  // The same droppers now produce detections of kind `ml`, with their scores; nothing else changes.
  const detecting = await scan();
  const ml = detecting.detections.filter((d) => d.kind === "ml");
  expect(ml.map(name).sort()).toEqual([...DROPPERS].sort());
  for (const d of ml) {
    expect(d).toMatchObject({ name: `Outpost.ML.${MODEL}`, verdict: "suspicious" });
    expect(d.score).toBeGreaterThanOrEqual(0.5);
  }
  expect(verdicts({ ...detecting, detections: detecting.detections.filter((d) => d.kind !== "ml") })).toEqual(
    verdicts(before),
  );
}, 120_000);
