/**
 * The examples in examples/<Type>/ are real content: for the types that had
 * none (DatasetA, LocalRepData, ScheduledQueryPack), each packs with the
 * vendor CLI exactly as docs and the demo say, installs with `contentctl
 * publish` + `agent update --once`, and `agent content list --json` shows its
 * handler loaded. Then the installed content answers as the demo shows: the
 * example signature finds the example sample, and the reputation example
 * knows it.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cliCommand } from "./fixtures/compiled.ts";
import { makeVendor, TEST_GROUP, type Vendor } from "./fixtures/vendor.ts";

// Real host processes and CLIs as separate processes: more than the default on a loaded machine.
setDefaultTimeout(120_000);

const ROOT = resolve(import.meta.dir, "..");
const EXAMPLES = join(ROOT, "examples");
let vendor: Vendor;
let dir: string;

async function run(bin: "agent" | "contentctl", args: string[], okCodes = [0]) {
  const proc = Bun.spawn([...(await cliCommand(bin)), ...args], {
    cwd: dir,
    env: { ...process.env, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (!okCodes.includes(code)) throw new Error(`${bin} ${args.join(" ")} exited ${code}: ${stderr}${stdout}`);
  return { stdout, code };
}
const json = async (bin: "agent" | "contentctl", args: string[], okCodes = [0]) =>
  JSON.parse((await run(bin, [...args, "--json"], okCodes)).stdout);

beforeAll(async () => {
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-examples-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  vendor?.cleanup();
});

const pack = (type: string, src: string) => {
  const out = join(dir, `${type}-1.tar`);
  return run("contentctl", [
    "pack",
    "--type",
    type,
    "--version",
    "1",
    "--keys",
    vendor.keysDir,
    "--out",
    out,
    src,
  ]).then(() => out);
};

test("DatasetA, LocalRepData and ScheduledQueryPack examples pack, publish, install and load", async () => {
  const repSrc = join(dir, "src", "LocalRepData");
  mkdirSync(repSrc, { recursive: true });
  await run("contentctl", [
    "rep",
    "build",
    "--hashes",
    join(EXAMPLES, "LocalRepData", "hashes.txt"),
    "--out",
    join(repSrc, "reputation.bin"),
  ]);
  const packages = [
    await pack("DatasetA", join(EXAMPLES, "DatasetA")),
    await pack("LocalRepData", repSrc),
    await pack("ScheduledQueryPack", join(EXAMPLES, "ScheduledQueryPack")),
  ];
  for (const p of packages) {
    await run("contentctl", [
      "publish",
      "--repo",
      vendor.repo,
      "--group",
      TEST_GROUP,
      "--keys",
      vendor.keysDir,
      p,
    ]);
  }
  const state = join(dir, "state");
  const update = await json("agent", [
    "update",
    "--once",
    "--repo",
    vendor.repo,
    "--group",
    TEST_GROUP,
    "--state",
    state,
    "--trust",
    vendor.trustPath,
  ]);
  expect(update.installed.map((i: { type: string }) => i.type).sort()).toEqual([
    "DatasetA",
    "LocalRepData",
    "ScheduledQueryPack",
  ]);
  const list = (await json("agent", ["content", "list", "--state", state])) as {
    type: string;
    version: number | null;
    handlerState: string;
  }[];
  const byType = Object.fromEntries(list.map((c) => [c.type, c]));
  for (const type of ["DatasetA", "LocalRepData", "ScheduledQueryPack"]) {
    expect({ type, version: byType[type]?.version, handlerState: byType[type]?.handlerState }).toEqual({
      type,
      version: 1,
      handlerState: "loaded",
    });
  }

  // What the demo shows: the example signature finds the example sample (exit 1: found)…
  const sample = join(EXAMPLES, "samples", "detected-on-purpose.txt");
  const scan = await json("agent", ["scan", sample, "--state", state], [1]);
  expect(JSON.stringify(scan)).toContain("Outpost.Demo.TestSignature-1");
  // …and LocalRepData knows it as malware.
  const rep = await json("agent", ["rep", sample, "--state", state]);
  expect(rep).toMatchObject({ class: "malware" });
});
