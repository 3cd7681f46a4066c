/**
 * ML mode follows tenant policy (`ml.mode`) and the `mlLive` flag in a real
 * agent (scanner host, signed content, the scan requester of the running
 * scanning service): with the flag on, a live model's scores are
 * detections; the flag off withholds live mode — the same model's scores
 * are only counted as telemetry, no verdict changes — and policy `off`
 * stops scoring. No restart, no scanning rebuild: the next scan sees it.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { metrics } from "../../core/metrics.ts";
import { ruleFile, supplementFile, tenantPolicy } from "../../test/fixtures/policy.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { effectiveScanningService } from "../DatasetA/scan/effective.ts";
import { scanRuntimeOf } from "../DatasetA/scan/runtime.ts";
import { defaultRegistry } from "../index.ts";
import { pickMetrics } from "../TELEMSUP/report.ts";
import { buildModel } from "./build.ts";
import { synthetic } from "./synthetic.ts";

setDefaultTimeout(120_000);

const EXAMPLE = join(import.meta.dir, "../../examples/MLModel/outpost-lr");
const TENANT = "acme";
const root = mkdtempSync(join(tmpdir(), "outpost-ml-policy-"));
const files = join(root, "files");
mkdirSync(files);
for (const [i, f] of (["elf-dropper", "pe-packed", "sh-dropper"] as const).entries())
  writeFileSync(join(files, `${f}-a`), synthetic(f, 9201 + i));
writeFileSync(join(files, "notes.txt"), "nothing to see");

let vendor: Vendor;
let t: TestAgent;
let fleet: ReturnType<typeof tenantPolicy>;
let scanning: ReturnType<typeof effectiveScanningService>;

const policy = (mode: string) => `<?xml version="1.0"?>\n<policy>\n  <ml mode="${mode}"/>\n</policy>\n`;

/** The example model as a live model scoring every object. */
async function liveModel(): Promise<Record<string, Uint8Array>> {
  const out = mkdtempSync(join(root, "payload-"));
  const manifest = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8"));
  const golden = JSON.parse(readFileSync(join(EXAMPLE, "golden.json"), "utf8"));
  await buildModel({
    wasm: new Uint8Array(readFileSync(join(EXAMPLE, "model.wasm"))),
    weights: new Uint8Array(readFileSync(join(EXAMPLE, "weights.bin"))),
    manifest: { ...manifest, mode: "live", threshold: 0.5, sampleRate: 1 },
    goldenInputs: golden.vectors.map((v: { features: number[] }) => v.features),
    out,
  });
  const dir = join(out, manifest.name);
  return Object.fromEntries(
    readdirSync(dir).map((f) => [`${manifest.name}/${f}`, readFileSync(join(dir, f))]),
  );
}

const scores = (mode: string) =>
  pickMetrics(metrics.render())
    .filter((m) => m.name === "outpost_ml_scores_total" && m.labels.mode === mode)
    .reduce((n, m) => n + m.value, 0);

async function mlDetections(): Promise<string[]> {
  const r = await scanRuntimeOf(t.agent)!.service.scanPaths([files]);
  return r.detections
    .filter((d) => d.kind === "ml")
    .map((d) => d.target.slice(files.length + 1))
    .sort();
}

async function cycle(change: () => Promise<unknown>): Promise<void> {
  await change();
  await t.agent.update();
  await scanning.settled();
}

beforeAll(async () => {
  vendor = await makeVendor();
  fleet = tenantPolicy(vendor, TENANT);
  await vendor.release("DatasetA", 1, {
    "main.ndb": `T.Mark:0:*:${Buffer.from("nothing-here").toString("hex")}\n`,
  });
  await vendor.release("MLModel", 1, await liveModel());
  await vendor.release("RemapperRules", 1, {
    "ml.json": ruleFile("tp.xml", [
      {
        id: "ml-mode",
        select: "/policy/ml/@mode",
        convert: { fn: "enum", map: { live: "live", telemetry: "telemetry", off: "off" } },
        target: "ml.mode",
      },
    ]),
  });
  await vendor.release("Flags", 1, { "flags.json": supplementFile({ mlLive: "available" }) });
  await fleet.setDocument("tp.xml", policy("live"));
  await fleet.setFlags({ mlLive: "on" });
  t = await startAgent(vendor, {
    registry: defaultRegistry,
    config: { fleet: { tenant: TENANT }, reputation: { processTagging: false } },
  });
  await t.agent.update();
  scanning = effectiveScanningService(
    { config: t.agent.config, api: t.agent, events: t.agent.events },
    t.agent.effective,
  );
  await scanning.start();
});

afterAll(async () => {
  await scanning?.stop();
  await t?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

test("mlLive on → detections; off → telemetry only; policy off → no scoring; back on → detections", async () => {
  const droppers = ["elf-dropper-a", "pe-packed-a", "sh-dropper-a"];
  expect(scanning.mlMode()).toBe("live");
  expect(await mlDetections()).toEqual(droppers);

  // The flag goes off: live mode is withheld, the model's scores become telemetry.
  await cycle(() => fleet.setFlags({ mlLive: "off" }));
  expect(scanning.mlMode()).toBe("telemetry");
  expect(t.agent.effective.gates().find((g) => g.flag === "mlLive")).toMatchObject({
    wanted: "live",
    value: "telemetry",
    state: "withheld",
  });
  const telemetryBefore = scores("telemetry");
  expect(await mlDetections()).toEqual([]);
  expect(scores("telemetry") - telemetryBefore).toBe(3);

  // Policy turns ML off: nothing is scored at all.
  await cycle(() => fleet.setDocument("tp.xml", policy("off")));
  expect(scanning.mlMode()).toBe("off");
  const all = scores("telemetry") + scores("live");
  expect(await mlDetections()).toEqual([]);
  expect(scores("telemetry") + scores("live")).toBe(all);

  // Policy live and the flag on again: detections again.
  await cycle(async () => {
    await fleet.setDocument("tp.xml", policy("live"));
    await fleet.setFlags({ mlLive: "on" });
  });
  expect(scanning.mlMode()).toBe("live");
  expect(await mlDetections()).toEqual(droppers);
  const status = t.agent.status().effective as { services: Record<string, { applied: unknown }> };
  expect(status.services.ml?.applied).toEqual({ mode: "live" });
});
