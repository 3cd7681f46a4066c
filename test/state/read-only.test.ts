/**
 * Read-only commands change nothing on disk. `agent content list` and
 * `agent status` against a stopped agent open its state dir in-process
 * (core/cli/agent/session.ts), and so do handler inquiries (`agent query`,
 * `hmpa check`, `rep`, `selfhelp`, `handlers call`); that view must not take
 * the lock file, clean up leftovers, create directories or rewrite state, and
 * its hosts work in private dirs (core/agent/read-only-view.ts) — the tree's
 * inodes, sizes and mtimes are the same before and after.
 */
import { afterEach, expect, test } from "bun:test";
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CommandDef, runCommand } from "citty";
import contentList from "../../core/cli/agent/content-list.ts";
import handlersCall from "../../core/cli/agent/handlers-call.ts";
import { setAgentWiring } from "../../core/cli/agent/session.ts";
import statusCommand from "../../core/cli/agent/status.ts";
import { captureStdio } from "../../core/stdio.ts";
import { makeVendor, startAgent, testRegistry, type Vendor } from "../fixtures/vendor.ts";

let vendor: Vendor | undefined;
let stateDir: string | undefined;
afterEach(() => {
  vendor?.cleanup();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  vendor = undefined;
  stateDir = undefined;
});

/** Runs a command in this process and returns what it printed on stdout. */
// biome-ignore lint/suspicious/noExplicitAny: any command shape
async function run(cmd: CommandDef<any>, rawArgs: string[]): Promise<string> {
  return (await captureStdio(() => runCommand(cmd, { rawArgs }))).stdout;
}

/** path → inode, size, mtime and kind of everything under `root` (root included). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    const kind = st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : "file";
    out[rel] = `${kind} ino=${st.ino} size=${st.size} mtime=${st.mtimeMs}`;
    if (kind === "dir") for (const name of readdirSync(p).sort()) walk(join(p, name), `${rel}/${name}`);
  };
  walk(root, ".");
  return out;
}

test("content list and status offline leave the state tree exactly as it was", async () => {
  vendor = await makeVendor();
  await vendor.release("TestText", 1, { "data.txt": "v1" });
  const t = await startAgent(vendor, { config: { update: { repo: vendor.repo } } });
  stateDir = t.stateDir;
  await t.agent.update();
  await vendor.release("TestText", 2, { "data.txt": "v2" });
  await t.agent.update();
  await t.stop();
  // Leftovers a start-up would clean: a stale temp file and work debris in staging/.
  writeFileSync(join(stateDir, ".1.1.leftover.tmp"), "x");
  mkdirSync(join(stateDir, "content", "TestText", "staging", "stage-debris"), { recursive: true });
  const config = JSON.stringify({
    stateDir,
    update: { repo: vendor.repo, group: "public-1", trust: vendor.trustPath },
  });
  const configFile = join(vendor.root, "agent.json");
  writeFileSync(configFile, config);

  const before = snapshot(stateDir);
  setAgentWiring({ registry: () => testRegistry() });
  // The commands themselves, as `agent content list --json` and `agent status --json` run them.
  const items = JSON.parse(await run(contentList, ["--config", configFile, "--json"]));
  expect(items.find((c: { type: string }) => c.type === "TestText")).toMatchObject({
    version: 2,
    lkgVersion: 1,
    handlerState: "loaded",
  });
  const status = JSON.parse(await run(statusCommand, ["--config", configFile, "--json"]));
  expect(status.content.find((c: { type: string }) => c.type === "TestText")?.version).toBe(2);
  expect(snapshot(stateDir)).toEqual(before);
});

test("handler inquiries offline (handlers call) run in private work dirs: the state tree is unchanged", async () => {
  vendor = await makeVendor();
  await vendor.release("TestText", 1, { "data.txt": "WRITE-WORK v1" });
  const t = await startAgent(vendor, { config: { update: { repo: vendor.repo } } });
  stateDir = t.stateDir;
  await t.agent.update();
  await t.stop();
  // The running agent's host wrote its scratch file at home; an agent whose host never ran has no
  // work dir at all — a view must create neither.
  expect(readdirSync(join(stateDir, "hosts", "test"))).toContain("scratch.txt");
  rmSync(join(stateDir, "hosts", "test"), { recursive: true });
  const configFile = join(vendor.root, "agent.json");
  writeFileSync(
    configFile,
    JSON.stringify({ stateDir, update: { repo: vendor.repo, group: "public-1", trust: vendor.trustPath } }),
  );
  const viewTmp = join(vendor.root, "tmp");
  mkdirSync(viewTmp);
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = viewTmp;
  const before = snapshot(stateDir);
  setAgentWiring({ registry: () => testRegistry() });
  try {
    const out = JSON.parse(await run(handlersCall, ["TestText", "read", "--config", configFile, "--json"]));
    expect(out).toEqual({ result: { text: "WRITE-WORK v1", version: 1 } });
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  }
  expect(snapshot(stateDir)).toEqual(before);
  // The view's private work dirs are gone with it.
  expect(readdirSync(viewTmp)).toEqual([]);
});
