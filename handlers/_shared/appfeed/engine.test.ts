/**
 * The APPFEED runtime in-process against this machine's real package
 * database (postgresql, nginx, clamav and rsyslog are Debian packages the
 * CI image installs): the examples detect them, and every forbidden
 * attempt is refused, reported, and excludes nothing.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createCapabilities } from "../../../core/handler/capabilities.ts";
import { type RuleLimits, RuleLimitsSchema } from "../lua/format.ts";
import { type AppfeedRuleset, type AppResult, listApps, runAppfeed } from "./engine.ts";
import { AppfeedEnv, parseDpkgStatus } from "./env.ts";
import { appfeedHandlerForTest } from "./testkit.ts";

setDefaultTimeout(30_000);
const EXAMPLES = resolve(import.meta.dir, "../../../examples");
const limits: RuleLimits = RuleLimitsSchema.parse({
  instructions: 5_000_000,
  callMs: 2000,
  callMemoryKb: 16384,
});
const caps = createCapabilities(appfeedHandlerForTest.manifest, {
  log: { info() {}, warn() {} },
  emit() {},
  workDir: "/nonexistent-workdir",
});
const env = () => new AppfeedEnv({ fs: caps.fs! });

function ruleset(rules: Record<string, string>): AppfeedRuleset {
  return {
    type: "APPFEED",
    version: 1,
    limits,
    rules: Object.entries(rules).map(([name, source]) => ({ name, file: `lua/${name}.lua.enc`, source })),
  };
}
const example = (type: string) =>
  ruleset(
    Object.fromEntries(
      readdirSync(join(EXAMPLES, type))
        .filter((f) => f.endsWith(".lua"))
        .map((f) => [f.slice(0, -4), readFileSync(join(EXAMPLES, type, f), "utf8")]),
    ),
  );
async function one(detect: string): Promise<AppResult> {
  const run = await runAppfeed(ruleset({ r: `app { id = "t", detect = function() ${detect} end }` }), env());
  return run.apps[0]!;
}

test("dpkg's status file: only installed packages count", () => {
  const text = [
    "Package: a\nStatus: install ok installed\nVersion: 1.0",
    "Package: b\nStatus: deinstall ok config-files\nVersion: 2",
    "Package: c\nStatus: install ok installed\nVersion: 3:4.5-1",
  ].join("\n\n");
  expect(parseDpkgStatus(text)).toEqual([
    { name: "a", version: "1.0", source: "dpkg" },
    { name: "c", version: "3:4.5-1", source: "dpkg" },
  ]);
});

test("examples/APPFEED detects PostgreSQL, nginx, ClamAV and rsyslog on this machine", async () => {
  const rs = example("APPFEED");
  expect((await listApps(rs, env())).map((a) => a.id).sort()).toEqual([
    "clamav",
    "nginx",
    "postgresql",
    "rsyslog",
  ]);
  const run = await runAppfeed(rs, env());
  const by = Object.fromEntries(run.apps.map((a) => [a.id, a]));
  for (const id of ["postgresql", "nginx", "clamav", "rsyslog"]) expect(by[id]!.outcome).toBe("detected");
  // The data directory is read from the cluster's postgresql.conf, not guessed.
  const pgConf = readFileSync(
    `/etc/postgresql/${readdirSync("/etc/postgresql")[0]}/main/postgresql.conf`,
    "utf8",
  ).match(/\ndata_directory\s*=\s*'([^']+)'/)![1];
  expect(by.postgresql!.exclusions).toContainEqual(
    expect.objectContaining({ kind: "path", value: pgConf, scope: ["onAccess", "scan"] }),
  );
  expect(by.clamav!.exclusions).toContainEqual(
    expect.objectContaining({ kind: "path", value: "/var/lib/clamav" }),
  );
  expect(by.rsyslog!.exclusions[0]).toMatchObject({ kind: "path", value: "/var/spool/rsyslog" });
});

test("a write attempt is refused — even when the rule catches the error — and nothing is excluded", async () => {
  const r = await one(`
    exclude { kind = "path", value = "/srv/x", scope = { "onAccess" } }
    pcall(function() fs.write("/etc/passwd", "x") end)`);
  expect(r.outcome).toBe("refused");
  expect(r.error).toContain("fs.write: APPFEED rules may only read");
  expect(r.exclusions).toEqual([]);
});

test("exec outside the allow-list, or a non-query argument, is refused before anything runs", async () => {
  expect((await one(`exec.query("sh", { "-c", "touch /tmp/pwned" })`)).error).toContain(
    "refused: exec.query: sh is not an allowed query tool",
  );
  expect((await one(`exec.query("rpm", { "-qa", "--eval", "%(id)" })`)).outcome).toBe("refused");
  expect((await one(`exec.query("systemctl", { "stop", "nginx" })`)).error).toContain(
    "only read-only queries",
  );
  const ok = await one(`
    local r = exec.query("dpkg-query", { "-W", "-f=\${Version}", "nginx" })
    if r.code == 0 then exclude { kind = "path", value = "/srv/q", scope = { "scan" }, reason = r.stdout } end`);
  expect(ok.outcome).toBe("detected");
  expect(ok.exclusions[0]!.reason).toMatch(/^\d/);
});

test("reading outside the declared paths is refused; a plain error only fails the app", async () => {
  expect((await one(`fs.read("/root/.bash_history")`)).error).toContain(
    "outside the paths APPFEED rules may read",
  );
  const failed = await one(`error("broken")`);
  expect(failed.outcome).toBe("failed");
  expect(failed.error).toContain("broken");
  expect((await one(`while true do end`)).error).toMatch(/instruction budget exceeded/);
});
