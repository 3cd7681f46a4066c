/**
 * `agent install` into a temporary root, through the real CLI: twice (the
 * second run changes nothing — the whole tree is compared), the unit checked
 * by `systemd-analyze verify`, drift repaired, --dry-run writes nothing,
 * uninstall removes everything (or keeps state). Root is needed for owners.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli } from "../../test/fixtures/cli-contract.ts";
import { LAYOUT } from "./layout.ts";

const isRoot = process.getuid?.() === 0;
const analyze = Bun.which("systemd-analyze");
const T = 60_000;

let dir: string;
let hostPasswd: string;
beforeAll(() => {
  hostPasswd = readFileSync("/etc/passwd", "utf8");
  dir = mkdtempSync(join(tmpdir(), "outpost-install-"));
  // Any PEM will do for install: it is copied, not parsed (the agent parses it at start).
  writeFileSync(join(dir, "root.pem"), "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n");
  writeFileSync(join(dir, "token"), "tenant-token-0123456789abcdef\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const agent = (...args: string[]) => cli("agent", args, dir);

/** Every path under root with type, mode, owner, content hash or link target. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const what = st.isSymbolicLink()
        ? `-> ${readlinkSync(p)}`
        : st.isDirectory()
          ? "dir"
          : createHash("sha256").update(readFileSync(p)).digest("hex");
      out.push(`${p.slice(root.length)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory() && !st.isSymbolicLink()) walk(p);
    }
  };
  walk(root);
  return out;
}

const installArgs = (root: string) => [
  "install",
  "--root",
  root,
  "--repo",
  "http://127.0.0.1:9/repo",
  "--group",
  "g1",
  "--trust",
  "root.pem",
  "--json",
];

describe.skipIf(!isRoot)("agent install --root (needs root for owners and modes)", () => {
  test(
    "succeeds twice; the second run changes nothing; the unit runs `agent run`",
    async () => {
      const root = join(dir, "twice");
      const first = await agent(...installArgs(root));
      expect(first.code, first.stderr).toBe(0);
      const r1 = JSON.parse(first.stdout);
      expect(r1.changes.length).toBeGreaterThan(5);
      expect(r1.service).toEqual({ state: "skipped", reason: "--root is not /: nothing to start" });
      const before = snapshot(root);

      const second = await agent(...installArgs(root));
      expect(second.code, second.stderr).toBe(0);
      expect(JSON.parse(second.stdout).changes).toEqual([]);
      expect(snapshot(root)).toEqual(before);

      const unit = readFileSync(join(root, LAYOUT.unit), "utf8");
      const execStart = unit.split("\n").find((l) => l.startsWith("ExecStart="));
      expect(execStart).toBe(`ExecStart=${LAYOUT.binary} run --config ${LAYOUT.config}`);
      expect(readlinkSync(join(root, LAYOUT.current))).toBe("slot-a");
      // The launcher (source tree) or executable in slot A answers like the agent.
      const v = Bun.spawnSync([join(root, LAYOUT.binary), "version", "--json"], { stdout: "pipe" });
      expect(JSON.parse(v.stdout.toString()).name).toBe("outpost-agent");

      const cfg = JSON.parse(readFileSync(join(root, LAYOUT.config), "utf8"));
      expect(cfg.update).toEqual({ repo: "http://127.0.0.1:9/repo", group: "g1", trust: LAYOUT.trust });
      expect(cfg.stateDir).toBe(LAYOUT.stateDir);
      const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
      expect(passwd).toMatch(/^outpost:x:(\d+):\1:.*:\/usr\/sbin\/nologin$/m);
      // The running system's /etc is never touched by --root.
      expect(readFileSync("/etc/passwd", "utf8")).toBe(hostPasswd);
      expect((lstatSync(join(root, LAYOUT.stateDir)).mode & 0o777).toString(8)).toBe("711");
      expect((lstatSync(join(root, "var")).mode & 0o777).toString(8)).toBe("755");
    },
    T,
  );

  test.skipIf(!analyze)(
    "systemd-analyze verify accepts the unit (and rejects a broken one)",
    async () => {
      const root = join(dir, "verify");
      expect((await agent(...installArgs(root))).code).toBe(0);
      // verify resolves the unit's dependencies (sysinit.target …) inside --root: give it the host's unit files.
      mkdirSync(join(root, "usr/lib/systemd"), { recursive: true });
      cpSync("/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true });
      const verify = () =>
        Bun.spawnSync([analyze as string, "verify", `--root=${root}`, "--man=no", LAYOUT.unitName], {
          stdout: "pipe",
          stderr: "pipe",
        });
      const ok = verify();
      expect(ok.exitCode, ok.stderr.toString()).toBe(0);
      expect(ok.stderr.toString()).toBe("");
      // The check can fail: an ExecStart whose executable is missing inside the root is refused.
      rmSync(join(root, LAYOUT.slotA, "agent"));
      const bad = verify();
      expect(bad.exitCode).not.toBe(0);
      expect(bad.stderr.toString()).toContain("is not executable");
    },
    T,
  );

  test(
    "drift is repaired and reported; a reinstall without flags keeps repo and group",
    async () => {
      const root = join(dir, "drift");
      expect((await agent(...installArgs(root))).code).toBe(0);
      chmodSync(join(root, LAYOUT.etcDir), 0o777);
      writeFileSync(join(root, LAYOUT.unit), "[Service]\nExecStart=/bin/false\n");
      const again = await agent("install", "--root", root, "--json");
      expect(again.code, again.stderr).toBe(0);
      const changes = JSON.parse(again.stdout).changes.map(
        (c: { path: string; action: string }) => `${c.action} ${c.path}`,
      );
      expect(changes.sort()).toEqual([`chmod ${LAYOUT.etcDir}`, `update ${LAYOUT.unit}`]);
      const cfg = JSON.parse(readFileSync(join(root, LAYOUT.config), "utf8"));
      expect(cfg.update.repo).toBe("http://127.0.0.1:9/repo");
      expect(cfg.update.group).toBe("g1");
    },
    T,
  );

  test(
    "--dry-run lists the changes and writes nothing",
    async () => {
      const root = join(dir, "dry");
      mkdirSync(root);
      const r = await agent(...installArgs(root), "--dry-run");
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report.dryRun).toBe(true);
      expect(report.changes.map((c: { path: string }) => c.path)).toContain(LAYOUT.unit);
      expect(readdirSync(root)).toEqual([]);
    },
    T,
  );

  test(
    "--tenant-token is installed 0600 and named in agent.json",
    async () => {
      const root = join(dir, "tenant");
      const r = await agent(...installArgs(root), "--tenant-token", "token");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((lstatSync(join(root, LAYOUT.tenantToken)).mode & 0o777).toString(8)).toBe("600");
      expect(JSON.parse(readFileSync(join(root, LAYOUT.config), "utf8")).fleet.tokenFile).toBe(
        LAYOUT.tenantToken,
      );
    },
    T,
  );

  test(
    "bad input: no trust anywhere, a missing trust file, a broken existing config — named, nothing written",
    async () => {
      const root = join(dir, "bad");
      const noTrust = await agent("install", "--root", root, "--json");
      expect(noTrust.code).not.toBe(0);
      expect(JSON.parse(noTrust.stdout).error.code).toBe("INST_NO_TRUST");
      const missing = await agent("install", "--root", root, "--trust", "nope.pem", "--json");
      expect(JSON.parse(missing.stdout).error).toMatchObject({
        code: "INST_INPUT",
        file: join(dir, "nope.pem"),
      });
      expect(existsSync(join(root, "opt"))).toBe(false);

      mkdirSync(join(root, "etc/outpost"), { recursive: true });
      writeFileSync(join(root, LAYOUT.config), "{ not json");
      const broken = await agent(...installArgs(root));
      expect(JSON.parse(broken.stdout).error).toMatchObject({
        code: "INST_CONFIG",
        file: join(root, LAYOUT.config),
      });
      expect(readFileSync(join(root, LAYOUT.config), "utf8")).toBe("{ not json");
      // A flag the agent would refuse at start is refused here, before anything is written.
      rmSync(join(root, LAYOUT.config));
      const badGroup = await agent(
        "install",
        "--root",
        root,
        "--trust",
        "root.pem",
        "--group",
        "NOT valid",
        "--json",
      );
      expect(JSON.parse(badGroup.stdout).error.code).toBe("CFG_INVALID");
      expect(existsSync(join(root, LAYOUT.unit))).toBe(false);
    },
    T,
  );

  test(
    "uninstall removes everything; --keep-state keeps the state dir and the user",
    async () => {
      const root = join(dir, "un");
      expect((await agent(...installArgs(root))).code).toBe(0);
      writeFileSync(join(root, LAYOUT.stateDir, "marker"), "x");
      const keep = await agent("uninstall", "--root", root, "--keep-state", "--json");
      expect(keep.code, keep.stderr).toBe(0);
      expect(JSON.parse(keep.stdout).removed).toEqual([LAYOUT.unit, LAYOUT.optDir, LAYOUT.etcDir]);
      expect(existsSync(join(root, LAYOUT.stateDir, "marker"))).toBe(true);
      expect(readFileSync(join(root, "etc/passwd"), "utf8")).toContain("outpost:");

      const all = await agent("uninstall", "--root", root, "--json");
      expect(JSON.parse(all.stdout).removed).toEqual([LAYOUT.stateDir, "user outpost"]);
      expect(readFileSync(join(root, "etc/passwd"), "utf8")).not.toContain("outpost:");
      expect(snapshot(root).filter((l) => l.includes("outpost"))).toEqual([]);
    },
    T,
  );
});

test(
  "agent install --help documents --root",
  async () => {
    const r = await agent("install", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--root");
    expect(r.stdout).toContain("as if it were /");
  },
  T,
);
