/**
 * MLModel against the external contract, with the real CLIs: examples/MLModel
 * packs, installs with `agent update --once` and loads (a telemetry model);
 * `contentctl ml build` compiles the AssemblyScript source into its live twin,
 * which installs as v2; `contentctl pack` refuses a looping model (the agent's
 * own rule M10, run at pack time).
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ContractRun, cli, installExample } from "../../test/fixtures/cli-contract.ts";

setDefaultTimeout(120_000);
const EXAMPLE = join(import.meta.dir, "../../examples/MLModel/outpost-lr");
let c: ContractRun | undefined;
afterAll(() => c?.cleanup());

test("examples/MLModel packs, installs with agent update --once and loads as a telemetry model", async () => {
  c = await installExample("MLModel");
  expect(c.content.find((x) => x.type === "MLModel")).toMatchObject({
    version: 1,
    handlerState: "loaded",
    handlerStatus: {
      models: [{ name: "outpost-lr", mode: "telemetry", featureVersion: 1, state: "active" }],
    },
  });
});

test("contentctl ml build compiles the AssemblyScript model into a live twin that installs as v2", async () => {
  c ??= await installExample("MLModel");
  const manifest = JSON.parse(readFileSync(join(EXAMPLE, "manifest.json"), "utf8"));
  writeFileSync(join(c.dir, "live.json"), JSON.stringify({ ...manifest, mode: "live" }));
  // Compiling AssemblyScript needs the `assemblyscript` development package, which the compiled
  // contentctl does not embed (a prebuilt .wasm needs nothing): this step runs the source CLI.
  const b = await cli(
    "contentctl",
    [
      "ml",
      "build",
      "--source",
      join(import.meta.dir, "models", "logistic.as"),
      "--weights",
      join(EXAMPLE, "weights.bin"),
      "--manifest",
      "live.json",
      "--golden-inputs",
      join(EXAMPLE, "golden.json"),
      "--out",
      "live",
      "--json",
    ],
    c.dir,
    { source: true },
  );
  expect(b.code).toBe(0);
  expect(JSON.parse(b.stdout)).toMatchObject({ name: "outpost-lr", mode: "live", goldenVectors: 28 });
  // Same source, same compiler: the AssemblyScript build reproduces the example's golden scores.
  const golden = (d: string) => JSON.parse(readFileSync(join(d, "golden.json"), "utf8")).vectors;
  expect(golden(join(c.dir, "live", "outpost-lr"))).toEqual(golden(EXAMPLE));
  const steps: string[][] = [
    ["pack", "--type", "MLModel", "--version", "2", "--keys", "k", "--out", "ml-2.tar", "live"],
    ["publish", "ml-2.tar", "--repo", "repo", "--group", "g1", "--keys", "k"],
  ];
  for (const s of steps) expect((await c.run("contentctl", ...s, "--json")).code).toBe(0);
  const u = await c.run(
    "agent",
    "update",
    "--once",
    "--repo",
    "repo",
    "--group",
    "g1",
    "--state",
    "st",
    "--trust",
    "k/root.pem",
    "--json",
  );
  expect(u.code).toBe(0);
  const list = JSON.parse((await c.run("agent", "content", "list", "--state", "st", "--json")).stdout);
  expect(list.find((x: { type: string }) => x.type === "MLModel")).toMatchObject({
    version: 2,
    handlerState: "loaded",
    handlerStatus: { models: [{ mode: "live" }] },
  });
});

test("contentctl pack refuses a model that never returns (M10) and names the file", async () => {
  c ??= await installExample("MLModel");
  const bad = join(c.dir, "bad");
  cpSync(EXAMPLE, join(bad, "outpost-lr"), { recursive: true });
  cpSync(join(import.meta.dir, "testdata", "loop.wasm"), join(bad, "outpost-lr", "model.wasm"));
  const r = await c.run(
    "contentctl",
    "pack",
    "--type",
    "MLModel",
    "--version",
    "3",
    "--keys",
    "k",
    "--out",
    "x.tar",
    bad,
    "--json",
  );
  expect(r.code).toBe(3);
  const err = JSON.parse(r.stdout).error;
  expect(err.code).toBe("HND_ML_INVALID");
  expect(err.message).toContain("outpost-lr/model.wasm: M10");
});
