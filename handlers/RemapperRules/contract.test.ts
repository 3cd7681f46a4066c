/**
 * The contract as it is checked from outside the repository, through the
 * real command lines (subprocesses, real host processes in the `config`
 * group): the examples pack, publish and install; `agent content list
 * --json` shows both types loaded; the fleet's `contentctl policy set` and
 * `contentctl flags set` reach `agent config show` and `agent flags` on the
 * next `agent update --once`; `agent policy apply` refuses a document with
 * an entity declaration and changes nothing.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadSigningKeys } from "../../core/crypto/keys.ts";
import { packDirectory } from "../../core/package/pack.ts";
import { cli, cliOk, packAndPublishExample } from "../../test/fixtures/cli-contract.ts";

setDefaultTimeout(120_000);

const ROOT = resolve(import.meta.dir, "../..");
let work: string;

const run = (bin: "agent" | "contentctl", ...args: string[]) => cli(bin, args, work);
const ok = (bin: "agent" | "contentctl", ...args: string[]) => cliOk(bin, args, work);

const AGENT = ["--state", "st", "--config", "agent.json"];
const UPDATE = ["update", "--once", "--repo", "repo", "--group", "stable", "--trust", "k/root.pem", ...AGENT];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "outpost-policy-contract-"));
  writeFileSync(join(work, "agent.json"), JSON.stringify({ fleet: { tenant: "acme" } }));
  await ok("contentctl", "keys", "init", "--dir", "k");
  for (const type of ["RemapperRules", "Flags"]) await packAndPublishExample(type, work, "stable");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("examples pack, publish and install; content list shows both loaded; features off by default", async () => {
  await ok("agent", ...UPDATE, "--json");
  const list = JSON.parse(await ok("agent", "content", "list", ...AGENT, "--json")) as {
    type: string;
    handlerState: string;
    host?: { group: string };
  }[];
  for (const type of ["RemapperRules", "Flags"]) {
    expect(list.find((c) => c.type === type)).toMatchObject({
      handlerState: "loaded",
      version: 1,
      host: { group: "config" },
    });
  }
  const flags = JSON.parse(await ok("agent", "flags", ...AGENT, "--json"));
  expect(flags.supplement).toEqual({ type: "Flags", version: 1 });
  expect(flags.flags.every((f: { enabled: boolean }) => !f.enabled)).toBe(true);
});

test("fleet policy and flags reach the agent on its next cycle; config show says where each value came from", async () => {
  await ok(
    "contentctl",
    "policy",
    "set",
    "--tenant",
    "acme",
    "--repo",
    "repo",
    "--keys",
    "k",
    join(ROOT, "examples/RemapperRules/policy/threat-protection.xml"),
  );
  await ok(
    "contentctl",
    "flags",
    "set",
    "--tenant",
    "acme",
    "--repo",
    "repo",
    "--keys",
    "k",
    "onAccessBlock",
    "on",
  );
  await ok("agent", ...UPDATE);
  const show = JSON.parse(await ok("agent", "config", "show", ...AGENT, "--json"));
  const value = (key: string) => show.values.find((v: { key: string }) => v.key === key);
  expect(value("liveProtection.timeoutMs")).toEqual({
    key: "liveProtection.timeoutMs",
    value: 1500,
    origin: {
      source: "policy",
      file: "live-protection.json",
      rule: "lp-timeout",
      document: "threat-protection.xml",
      line: 8,
    },
  });
  expect(value("query.watchdog.wallSeconds")?.value).toBe(120);
  expect(value("fleet.tenant")?.origin).toEqual({ source: "agent.json", file: join(work, "agent.json") });
  expect(show.failures).toEqual([]);
  const flags = JSON.parse(await ok("agent", "flags", ...AGENT, "--json"));
  expect(flags.flags.find((f: { flag: string }) => f.flag === "onAccessBlock")).toMatchObject({
    supplement: "available",
    service: "on",
    enabled: true,
  });
  const text = await ok("agent", "config", "show", ...AGENT, "--key", "liveProtection");
  expect(text).toMatch(
    /liveProtection\.timeoutMs\s+1500\s+policy live-protection\.json rule lp-timeout \(threat-protection\.xml:8\)/,
  );
});

test("agent policy apply refuses an entity declaration with file and line, and changes nothing", async () => {
  const before = readFileSync(join(work, "st/effective/state.json"), "utf8");
  writeFileSync(
    join(work, "threat-protection.xml"),
    '<?xml version="1.0"?>\n<!DOCTYPE p [<!ENTITY a "aaaaaaaa">]>\n<policy>&a;</policy>\n',
  );
  const r = await run("agent", "policy", "apply", "threat-protection.xml", ...AGENT, "--json");
  expect(r.code).toBe(3);
  expect(JSON.parse(r.stdout).error).toMatchObject({ code: "POL_XML_DTD", file: "threat-protection.xml" });
  expect(JSON.parse(r.stdout).error.message).toMatch(/^threat-protection\.xml:2: <!DOCTYPE> is not allowed/);
  expect(readFileSync(join(work, "st/effective/state.json"), "utf8")).toBe(before);
});

test("agent policy apply (air-gapped): a local document wins; a failing rule file keeps its previous values", async () => {
  const xml = readFileSync(join(ROOT, "examples/RemapperRules/policy/threat-protection.xml"), "utf8")
    .replace("1500ms", "3s")
    .replace('memoryMb="256"', 'memoryMb="999999"');
  writeFileSync(join(work, "threat-protection.xml"), xml);
  const r = await run("agent", "policy", "apply", "threat-protection.xml", ...AGENT, "--json");
  expect(r.code).toBe(3);
  const out = JSON.parse(r.stdout);
  expect(out.failures).toMatchObject([
    { file: "scheduled-queries.json", code: "POL_VALUE_OUT_OF_RANGE", rule: "watchdog-memory", line: 13 },
  ]);
  const show = JSON.parse(await ok("agent", "config", "show", ...AGENT, "--json"));
  const value = (key: string) => show.values.find((v: { key: string }) => v.key === key)?.value;
  expect(value("liveProtection.timeoutMs")).toBe(3000);
  expect(value("query.watchdog.memoryMb")).toBe(256);

  // Removing the local document puts the fleet's back in force, and the failure goes with it.
  const removed = JSON.parse(
    await ok("agent", "policy", "remove", "threat-protection.xml", ...AGENT, "--json"),
  );
  expect(removed.failures).toEqual([]);
  const after = JSON.parse(await ok("agent", "config", "show", ...AGENT, "--json"));
  expect(after.values.find((v: { key: string }) => v.key === "liveProtection.timeoutMs")?.value).toBe(1500);
  const again = await run("agent", "policy", "remove", "threat-protection.xml", ...AGENT);
  expect(again.code).toBe(2);
  expect(again.stderr).toContain("no local policy document");
});

test("a Flags supplement for another agent version: contentctl pack refuses it, and so does the agent", async () => {
  const dir = join(work, "flags-other");
  cpSync(join(ROOT, "examples/Flags"), dir, { recursive: true });
  writeFileSync(
    join(dir, "flags.json"),
    JSON.stringify(
      { schema: 1, releases: [{ agentVersions: ">=9.0.0", flags: { ips: "available" } }] },
      null,
      2,
    ),
  );
  // Pack-time validation runs the agent's own handler: it refuses what this agent version would.
  const packed = await run(
    "contentctl",
    "pack",
    "--type",
    "Flags",
    "--version",
    "2",
    "--keys",
    "k",
    "--out",
    "Flags-2.tar",
    dir,
    "--json",
  );
  expect(packed.code).toBe(3);
  expect(JSON.parse(packed.stdout).error).toMatchObject({ code: "FLAG_VERSION_MISMATCH" });
  // A package signed by other tooling (say, the 9.x contentctl) still meets the agent's own check.
  const bytes = await packDirectory({
    type: "Flags",
    version: 2,
    keys: await loadSigningKeys(join(work, "k")),
    dir,
  });
  writeFileSync(join(work, "Flags-2.tar"), bytes);
  await ok("contentctl", "publish", "Flags-2.tar", "--repo", "repo", "--group", "stable", "--keys", "k");
  const r = await run("agent", ...UPDATE, "--json");
  expect(r.code).toBe(3);
  const report = JSON.parse(r.stdout);
  expect(report.rejected[0]).toMatchObject({ type: "Flags", code: "FLAG_VERSION_MISMATCH" });
  expect(report.rejected[0].reason).toMatch(/flags\.json:5: no release covers agent version/);
  const list = JSON.parse(await ok("agent", "content", "list", ...AGENT, "--json"));
  expect(list.find((c: { type: string }) => c.type === "Flags")).toMatchObject({
    version: 1,
    handlerState: "loaded",
  });
});
