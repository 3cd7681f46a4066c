/**
 * ML models end to end in a real agent (scanner host process, signed
 * content, the scan requester): a telemetry model — threshold 0 — changes no
 * scan result and its scores reach /metrics and the telemetry report; its
 * live twin then produces detections of kind `ml`; a bad next version is
 * refused and the live twin keeps serving.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { metrics } from "../../core/metrics.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { createScanRuntime } from "../DatasetA/scan/runtime.ts";
import type { ScanReport } from "../DatasetA/scan/service.ts";
import { defaultRegistry } from "../index.ts";
import { pickMetrics } from "../TELEMSUP/report.ts";
import { buildModel } from "./build.ts";
import { synthetic } from "./synthetic.ts";

setDefaultTimeout(60_000);

const EXAMPLE = join(import.meta.dir, "../../examples/MLModel/outpost-lr");
const root = mkdtempSync(join(tmpdir(), "outpost-ml-e2e-"));
const files = join(root, "files");
mkdirSync(files);
const put = (name: string, data: Uint8Array | string) => writeFileSync(join(files, name), data);
// Six synthetic droppers (seeds the training never used), a signature hit, and benign text.
for (const [i, f] of (["elf-dropper", "pe-packed", "sh-dropper"] as const).entries()) {
  put(`${f}-a`, synthetic(f, 9001 + i));
  put(`${f}-b`, synthetic(f, 9101 + i));
}
put("mark.txt", "a plain detection: outpost-mark-one");
put("README.md", readFileSync(join(import.meta.dir, "../../README.md")));
put("build.sh", "#!/bin/sh\nset -e\nbun install\nbun test\n");

let vendor: Vendor;
let agent: TestAgent;

/** An MLModel payload (model folder → file bytes) built from the example with manifest changes. */
async function payload(
  patch: Record<string, unknown>,
  wasm?: Uint8Array,
  goldenInputs?: number[][],
): Promise<Record<string, Uint8Array>> {
  const out = mkdtempSync(join(root, "payload-"));
  const manifest = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8"));
  const golden = JSON.parse(readFileSync(join(EXAMPLE, "golden.json"), "utf8"));
  await buildModel({
    wasm: wasm ?? new Uint8Array(readFileSync(join(EXAMPLE, "model.wasm"))),
    weights: new Uint8Array(readFileSync(join(EXAMPLE, "weights.bin"))),
    manifest: { ...manifest, ...patch },
    goldenInputs: goldenInputs ?? golden.vectors.map((v: { features: number[] }) => v.features),
    out,
  });
  const dir = join(out, String(patch.name ?? manifest.name));
  const record: Record<string, Uint8Array> = {};
  for (const f of readdirSync(dir))
    record[`${patch.name ?? manifest.name}/${f}`] = readFileSync(join(dir, f));
  return record;
}

async function scan(): Promise<ScanReport> {
  const rt = await createScanRuntime(
    { config: agent.agent.config, api: agent.agent, events: agent.agent.events },
    { background: false },
  );
  return rt.service.scanPaths([files]);
}

const verdicts = (r: ScanReport) =>
  r.detections.map((d) => `${d.target.slice(files.length + 1)}:${d.name}:${d.kind}:${d.verdict}`).sort();

function mlSeries(mode: string, band: string): number {
  return pickMetrics(metrics.render())
    .filter((m) => m.name === "outpost_ml_scores_total" && m.labels.mode === mode && m.labels.band === band)
    .reduce((n, m) => n + m.value, 0);
}

beforeAll(async () => {
  vendor = await makeVendor();
  await vendor.release("DatasetA", 1, {
    "main.ndb": `T.Mark:0:*:${Buffer.from("outpost-mark-one").toString("hex")}\n`,
  });
  agent = await startAgent(vendor, { registry: defaultRegistry });
  await agent.agent.update();
});

afterAll(async () => {
  await agent?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

test("telemetry → live twin → a bad version refused while the twin keeps serving", async () => {
  const before = await scan();
  expect(verdicts(before)).toEqual(["mark.txt:T.Mark:body:malware"]);

  // 1. Telemetry, threshold 0: every eligible object is "over", and still nothing changes.
  await vendor.release("MLModel", 1, await payload({ mode: "telemetry", threshold: 0, sampleRate: 1 }));
  const r1 = await agent.agent.update();
  expect(r1.installed.map((i) => i.type)).toEqual(["MLModel"]);
  const over0 = mlSeries("telemetry", "over");
  const telemetry = await scan();
  expect(verdicts(telemetry)).toEqual(verdicts(before));
  expect(telemetry.found).toBe(before.found);
  // 6 droppers + build.sh are elf/pe/script; README.md and mark.txt are not the model's kinds.
  expect(mlSeries("telemetry", "over") - over0).toBe(7);
  expect(await agent.agent.call("MLModel", "models", {})).toMatchObject({
    version: 1,
    models: [{ name: "outpost-lr", mode: "telemetry", scores: 7, over: 7, faults: 0 }],
  });

  // 2. The live twin: detections of kind ml with their score, on the droppers only.
  await vendor.release("MLModel", 2, await payload({ mode: "live", threshold: 0.5, sampleRate: 1 }));
  await agent.agent.update();
  const live = await scan();
  const ml = live.detections.filter((d) => d.kind === "ml");
  expect(ml.map((d) => d.target.slice(files.length + 1)).sort()).toEqual([
    "elf-dropper-a",
    "elf-dropper-b",
    "pe-packed-a",
    "pe-packed-b",
    "sh-dropper-a",
    "sh-dropper-b",
  ]);
  for (const d of ml) {
    expect(d).toMatchObject({ name: "Outpost.ML.outpost-lr", verdict: "suspicious" });
    expect(d.score).toBeGreaterThanOrEqual(0.5);
  }
  expect(live.detections.filter((d) => d.kind !== "ml").map((d) => d.name)).toEqual(["T.Mark"]);

  // 3. A next version whose model never returns: refused before activation, v2 keeps serving.
  const loop = new Uint8Array(readFileSync(join(import.meta.dir, "testdata", "loop.wasm")));
  await vendor.release(
    "MLModel",
    3,
    await payload({ mode: "live", threshold: 0.5, sampleRate: 1 }).then((p) => ({
      ...p,
      "outpost-lr/model.wasm": loop,
    })),
  );
  const r3 = await agent.agent.update();
  expect(r3.installed).toEqual([]);
  expect(JSON.stringify(r3)).toContain("HND_ML_INVALID");
  expect(agent.agent.content().find((c) => c.type === "MLModel")).toMatchObject({
    version: 2,
    handlerState: "loaded",
  });
  expect((await scan()).detections.filter((d) => d.kind === "ml")).toHaveLength(6);
});

test("a model that passes its checks but keeps faulting is switched off and its version rolled back", async () => {
  // Valid on its golden vector (a small object), never returns on objects above ~7 KB.
  const trap = new Uint8Array(readFileSync(join(import.meta.dir, "testdata", "trap-big.wasm")));
  const small = [[0.1, ...new Array(36).fill(0)]];
  await vendor.release(
    "MLModel",
    4,
    await payload({ mode: "live", threshold: 0.5, sampleRate: 1 }, trap, small),
  );
  const r4 = await agent.agent.update();
  expect(r4.installed.map((i) => `${i.type}:${i.version}`)).toEqual(["MLModel:4"]);
  const events: string[] = [];
  const off = agent.agent.events.subscribe((e) => {
    if (e.type === "ml-model-faulted") events.push(JSON.stringify(e));
  });
  const t = performance.now();
  const report = await scan();
  off();
  // Faults are bounded by fuel (no hang), never verdicts; the signature detection is untouched.
  expect(performance.now() - t).toBeLessThan(30_000);
  // The rollback happens mid-scan (third fault): later files are scored by v2 again, and only
  // droppers can be among them; faulted calls themselves never produce a detection.
  for (const d of report.detections.filter((x) => x.kind === "ml"))
    expect(d.target).toMatch(/-dropper-|pe-packed-/);
  expect(report.detections.filter((d) => d.kind !== "ml").map((d) => d.name)).toEqual(["T.Mark"]);
  expect(events).toHaveLength(1);
  expect(events[0]).toContain('"version":4');
  expect(agent.agent.content().find((c) => c.type === "MLModel")).toMatchObject({
    version: 2,
    handlerState: "loaded",
  });
  expect((await scan()).detections.filter((d) => d.kind === "ml")).toHaveLength(6);
});
