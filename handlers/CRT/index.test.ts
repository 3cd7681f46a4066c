/**
 * CRT end to end with the real CLIs: packs from examples/CRT, publishes,
 * is NOT installed by a scheduled-style `agent update --once` (on-demand),
 * and `agent install --remove-incompatible` removes a real Debian package
 * the example flags (`sl`) — or, with --dry-run, only lists it. Pack refuses
 * rules aimed at the agent or at essential packages.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cli } from "../../test/fixtures/cli-contract.ts";
import { withSystemLock } from "../../test/fixtures/system-lock.ts";

const ROOT = resolve(import.meta.dir, "../..");
const isRoot = process.getuid?.() === 0;
const T = 180_000;

const dpkgStatus = (pkg: string) =>
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  Bun.spawnSync(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], {
    stdout: "pipe",
    stderr: "ignore",
  }).stdout.toString();

/** Why the removal test cannot run here: not root, or no apt package `sl` to install (not Debian, no index). */
function slUnavailable(): string | null {
  if (!isRoot) return "not root";
  if (!Bun.which("apt-get")) return "no apt-get";
  const policy = Bun.spawnSync(["apt-cache", "policy", "sl"], { stdout: "pipe", stderr: "ignore" });
  return /Candidate: (?!\(none\))/.test(policy.stdout.toString()) ? null : "apt knows no candidate for sl";
}

/** Installs `sl` for the removal test; the reason it could not (no network, say). */
function installSl(): string | null {
  if (dpkgStatus("sl") === "installed") return null;
  const r = Bun.spawnSync(["apt-get", "install", "-y", "-qq", "sl"], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  return r.exitCode === 0
    ? null
    : `apt-get install sl failed (no network?): ${r.stderr.toString().trim().slice(-200)}`;
}

let dir: string;
const run = (tool: "agent" | "contentctl", ...args: string[]) => cli(tool, args, dir);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "outpost-crt-test-"));
  for (const args of [
    ["keys", "init", "--dir", "k", "--json"],
    [
      "pack",
      "--type",
      "CRT",
      "--version",
      "1",
      "--keys",
      "k",
      "--out",
      "CRT-1.tar",
      join(ROOT, "examples/CRT"),
    ],
    ["publish", "CRT-1.tar", "--repo", "repo", "--group", "g1", "--keys", "k", "--json"],
  ]) {
    const r = await run("contentctl", ...args);
    if (r.code !== 0) throw new Error(`contentctl ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  }
}, T);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("CRT", () => {
  test(
    "pack refuses a rule that removes libc6 or disables the agent, naming the file",
    async () => {
      for (const [action, code] of [
        [{ kind: "apt-remove", package: "libc6" }, "CRT_TARGETS_ESSENTIAL"],
        [{ kind: "systemctl-disable", unit: "outpost.service" }, "CRT_TARGETS_AGENT"],
      ] as const) {
        const src = join(dir, `bad-${code}`);
        cpSync(join(ROOT, "examples/CRT"), src, { recursive: true });
        const doc = JSON.parse(readFileSync(join(src, "rules.json"), "utf8"));
        doc.rules[0].actions.push(action);
        writeFileSync(join(src, "rules.json"), JSON.stringify(doc));
        const r = await run(
          "contentctl",
          "pack",
          "--type",
          "CRT",
          "--version",
          "2",
          "--keys",
          "k",
          "--out",
          "bad.tar",
          src,
          "--json",
        );
        expect(r.code).toBe(3);
        expect(JSON.parse(r.stdout).error).toMatchObject({ code, file: join(src, "rules.json") });
      }
    },
    T,
  );

  test(
    "on-demand: an update cycle that does not name CRT never installs it",
    async () => {
      const u = await run(
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
      expect(u.code, u.stdout + u.stderr).toBe(0);
      expect(JSON.parse(u.stdout)).toMatchObject({ ok: true, installed: [], rejected: [] });
      const list = await run("agent", "content", "list", "--state", "st", "--json");
      const crt = JSON.parse(list.stdout).find((c: { type: string }) => c.type === "CRT");
      expect(crt.version).toBeNull();
      expect(crt.handlerState).not.toBe("loaded");
    },
    T,
  );

  const skip = slUnavailable();
  if (skip) console.warn(`CRT removal test skipped: ${skip}`);
  test.skipIf(skip !== null)(
    "agent install --remove-incompatible: --dry-run lists sl and removes nothing; the real run removes it",
    // The dpkg database is the machine's: a second copy of the suite installs and removes `sl` too.
    () => withSystemLock("dpkg-sl", removeSl),
    T,
  );
});

async function removeSl(): Promise<void> {
  const installed = installSl();
  if (installed) throw new Error(installed);
  expect(dpkgStatus("sl")).toBe("installed");
  const common = [
    "install",
    "--root",
    join(dir, "root"),
    "--repo",
    "repo",
    "--group",
    "g1",
    "--trust",
    "k/root.pem",
    "--remove-incompatible",
    "--json",
  ];
  const dry = await run("agent", ...common, "--dry-run");
  expect(dry.code, dry.stdout + dry.stderr).toBe(0);
  const dr = JSON.parse(dry.stdout).incompatible;
  expect(dr).toMatchObject({ ok: true, dryRun: true, version: 1 });
  expect(dr.findings.map((f: { rule: string }) => f.rule)).toEqual(["CRT-DEMO-SL"]);
  expect(dr.findings[0].actions[0]).toMatchObject({
    state: "planned",
    action: { kind: "apt-remove", package: "sl" },
  });
  expect(dpkgStatus("sl")).toBe("installed");

  const real = await run("agent", ...common);
  expect(real.code, real.stdout + real.stderr).toBe(0);
  const rr = JSON.parse(real.stdout);
  expect(rr.incompatible.findings[0].actions[0].state).toBe("done");
  expect(dpkgStatus("sl")).not.toBe("installed");
  expect(rr.changes.length).toBeGreaterThan(0);
  // CRT is removed after installation: nothing of it stays in the installed state dir.
  expect(readFileSync(join(dir, "root/etc/outpost/agent.json"), "utf8")).toContain('"group": "g1"');
  const again = await run("agent", ...common);
  expect(JSON.parse(again.stdout).incompatible.findings).toEqual([]);
}
