/**
 * The demo's "tamper with it" hint (scripts/demo.ts), run as written: a
 * version the agent has not installed yet is published, one byte of it is
 * changed in the repository, and the next update refuses it (R7,
 * UPD_HASH_MISMATCH, exit 3) while the installed version keeps serving.
 * (The old hint tampered with the package already installed: nothing
 * happened.)
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { makeVendor, TEST_GROUP, type Vendor } from "./fixtures/vendor.ts";

setDefaultTimeout(120_000);

const ROOT = resolve(import.meta.dir, "..");
let vendor: Vendor;
let dir: string;

async function run(bin: "agent" | "contentctl", ...args: string[]) {
  const proc = Bun.spawn([process.execPath, join(ROOT, "bin", `${bin}.ts`), ...args], {
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
  return { stdout, stderr, code };
}

beforeAll(async () => {
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-demo-tamper-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  vendor?.cleanup();
});

test("the demo's tamper hint makes the next update refuse the tampered version", async () => {
  const src = join(dir, "src/Hmpa_data");
  mkdirSync(src, { recursive: true });
  const ok = async (bin: "agent" | "contentctl", ...args: string[]) => {
    const r = await run(bin, ...args);
    expect({ args: args.join(" "), code: r.code, err: r.code === 0 ? "" : r.stderr }).toMatchObject({
      code: 0,
    });
    return r.stdout;
  };
  await ok(
    "contentctl",
    "hmpa-build",
    "--in",
    join(ROOT, "examples/Hmpa_data/thumbprints.txt"),
    "--out",
    join(src, "allowlist.bin"),
  );
  const update = [
    "update",
    "--once",
    "--repo",
    vendor.repo,
    "--group",
    TEST_GROUP,
    "--state",
    join(dir, "state"),
    "--trust",
    vendor.trustPath,
  ];
  for (const version of ["1", "2"]) {
    const pkg = join(dir, `Hmpa_data-${version}.tar`);
    await ok(
      "contentctl",
      "pack",
      "--type",
      "Hmpa_data",
      "--version",
      version,
      "--keys",
      vendor.keysDir,
      "--out",
      pkg,
      src,
    );
    await ok(
      "contentctl",
      "publish",
      "--repo",
      vendor.repo,
      "--group",
      TEST_GROUP,
      "--keys",
      vendor.keysDir,
      pkg,
    );
    // v1 installs as in the demo; v2 is what the hint publishes and tampers with.
    if (version === "1") await ok("agent", ...update);
  }
  // The hint's own command, with the demo's paths swapped for this test's.
  const pkgDir = join(vendor.repo, "packages/Hmpa_data");
  const published = readdirSync(pkgDir).filter((n) => n.startsWith("Hmpa_data-2-"));
  expect(published).toHaveLength(1);
  const target = join(pkgDir, published[0]!);
  const sizeBefore = statSync(target).size;
  expect(sizeBefore).toBeGreaterThan(3001);
  const dd = Bun.spawnSync([
    "bash",
    "-c",
    `printf 'x' | dd of="${target}" bs=1 seek=3000 conv=notrunc 2>/dev/null`,
  ]);
  expect(dd.exitCode).toBe(0);
  expect(statSync(target).size).toBe(sizeBefore);

  const r = await run("agent", ...update, "--json");
  expect(r.code).toBe(3);
  const report = JSON.parse(r.stdout) as { ok: boolean; rejected: { type: string; code: string }[] };
  expect(report.ok).toBe(false);
  expect(report.rejected).toEqual([
    expect.objectContaining({ type: "Hmpa_data", code: "UPD_HASH_MISMATCH" }),
  ]);
  const list = JSON.parse(await ok("agent", "content", "list", "--state", join(dir, "state"), "--json")) as {
    type: string;
    version: number;
    handlerState: string;
  }[];
  expect(list.find((c) => c.type === "Hmpa_data")).toMatchObject({ version: 1, handlerState: "loaded" });
});
