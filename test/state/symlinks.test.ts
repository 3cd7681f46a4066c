/**
 * Symbolic links where STATE has directories are refused with
 * STORE_SYMLINK, naming the link, and never followed for writes or clean-up
 * (core/store/state-links.ts): whatever the link points at is exactly as it
 * was afterwards.
 */
import { afterEach, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { liveText, makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";

let vendor: Vendor | undefined;
let t: TestAgent | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await t?.stop().catch(() => {});
  vendor?.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (t) rmSync(t.stateDir, { recursive: true, force: true });
  vendor = undefined;
  t = undefined;
});

function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    out[rel] = `${st.isDirectory() ? "dir" : "file"} ino=${st.ino} size=${st.size} mtime=${st.mtimeMs}`;
    if (st.isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name), `${rel}/${name}`);
  };
  walk(root, ".");
  return out;
}

/** Moves STATE/<rel> outside and leaves a symlink to it in its place; returns the outside path. */
function replaceWithLink(stateDir: string, rel: string): string {
  const outside = join(mkdtempSync(join(tmpdir(), "outpost-link-target-")), "moved");
  dirs.push(join(outside, ".."));
  renameSync(join(stateDir, rel), outside);
  symlinkSync(outside, join(stateDir, rel));
  return outside;
}

async function installedAgent(): Promise<TestAgent> {
  vendor = await makeVendor();
  await vendor.release("TestText", 1, { "data.txt": "v1" });
  t = await startAgent(vendor);
  expect((await t.agent.update()).installed.length).toBe(1);
  return t;
}

test.each([
  "content",
  "content/TestText",
  "content/TestText/staging",
  "content/TestText/versions",
  "index-cache/public-1",
  "hosts/test",
])("STATE/%s as a symlink: start refuses with STORE_SYMLINK, the link target is untouched", async (rel) => {
  const a = await installedAgent();
  await a.agent.stop();
  const outside = replaceWithLink(a.stateDir, rel);
  const before = snapshot(outside);
  const err = await a.restart().catch((e) => e);
  expect(err.code).toBe("STORE_SYMLINK");
  expect(err.file).toBe(join(a.stateDir, rel));
  expect(err.message).toContain(outside);
  expect(snapshot(outside)).toEqual(before);
});

test("a version directory replaced by a symlink is refused, not collected through the link", async () => {
  const a = await installedAgent();
  await a.agent.stop();
  const versions = join(a.stateDir, "content", "TestText", "versions");
  const [v1] = readdirSync(versions);
  const outside = replaceWithLink(a.stateDir, `content/TestText/versions/${v1}`);
  const before = snapshot(outside);
  const err = await a.restart().catch((e) => e);
  expect(err.code).toBe("STORE_SYMLINK");
  expect(snapshot(outside)).toEqual(before);
});

test("staging/ turned into a symlink while running: the next install is refused, nothing written through it", async () => {
  const a = await installedAgent();
  const outside = replaceWithLink(a.stateDir, "content/TestText/staging");
  const before = snapshot(outside);
  await vendor!.release("TestText", 2, { "data.txt": "v2" });
  const report = await a.agent.update();
  expect(report.installed).toEqual([]);
  expect(report.rejected.map((r) => r.code)).toEqual(["STORE_SYMLINK"]);
  expect(report.rejected[0]?.reason).toContain("staging");
  expect(await liveText(a.agent)).toBe("v1");
  expect(snapshot(outside)).toEqual(before);
});
