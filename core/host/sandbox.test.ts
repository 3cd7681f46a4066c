import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { READ, READ_EXEC, READ_WRITE } from "./landlock.ts";
import type { SandboxSpec } from "./policy.ts";
import {
  buildLaunch,
  cgroupOomKills,
  createHostCgroup,
  detectCgroupV2,
  landlockRules,
  resolveAgentIdentity,
  sampleProc,
} from "./sandbox.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-sandbox-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = (over: Partial<SandboxSpec> = {}): SandboxSpec => ({
  group: "scanner",
  runAs: "agent",
  fsRead: [],
  fsWrite: [],
  exec: false,
  net: "none",
  agent: false,
  capabilities: [],
  ...over,
});
const tools = { unshare: "/usr/bin/unshare", setpriv: "/usr/bin/setpriv", prlimit: "/usr/bin/prlimit" };
const nobody = { uid: 65534, gid: 65534, user: "nobody" };
const base = ["/opt/outpost/agent", "host", "--group", "scanner"];

describe("identity", () => {
  test("prefers the dedicated user, else nobody/nogroup", () => {
    const passwd = join(dir, "passwd");
    const group = join(dir, "group");
    writeFileSync(
      passwd,
      "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
    );
    writeFileSync(group, "root:x:0:\nnogroup:x:65533:\n");
    expect(resolveAgentIdentity("outpost", { passwd, group })).toEqual({
      uid: 65534,
      gid: 65533,
      user: "nobody",
    });
    writeFileSync(
      passwd,
      `${readFileSync(passwd, "utf8")}outpost:x:998:997::/var/lib/outpost:/usr/sbin/nologin\n`,
    );
    expect(resolveAgentIdentity("outpost", { passwd, group })).toEqual({
      uid: 998,
      gid: 997,
      user: "outpost",
    });
  });
});

describe("launch wrappers", () => {
  test("root supervisor, unprivileged net-none group: netns, uid drop without capabilities, rlimits", () => {
    const l = buildLaunch({ base, spec: spec(), supervisorUid: 0, identity: nobody, cpuSeconds: 60, tools });
    expect(l.argv).toEqual([
      "/usr/bin/unshare",
      "--net",
      "--",
      "/usr/bin/setpriv",
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--",
      "/usr/bin/prlimit",
      "--cpu=60:65",
      "--core=0",
      "--",
      ...base,
    ]);
    expect(l.layers).toEqual({
      uidDrop: true,
      capabilities: true,
      netns: true,
      rlimits: true,
      noNewPrivs: true,
    });
    expect([l.uid, l.user]).toEqual([65534, "nobody"]);
  });

  test("root group keeps root but only its listed capabilities; a declared endpoint keeps the network", () => {
    const l = buildLaunch({
      base,
      spec: spec({
        runAs: "root",
        capabilities: ["chown", "fowner"],
        net: { connectPorts: [443], endpoints: ["https:x"] },
      }),
      supervisorUid: 0,
      identity: nobody,
      cpuSeconds: 10,
      tools,
    });
    expect(l.argv.slice(0, 5)).toEqual([
      "/usr/bin/setpriv",
      "--inh-caps=-all",
      "--bounding-set=-all,+chown,+fowner",
      "--no-new-privs",
      "--",
    ]);
    expect(l.layers).toMatchObject({ uidDrop: false, netns: false, capabilities: true });
  });

  test("missing tools and an unprivileged supervisor degrade with reasons", () => {
    const none = { unshare: null, setpriv: null, prlimit: null };
    const l = buildLaunch({
      base,
      spec: spec(),
      supervisorUid: 1000,
      identity: nobody,
      cpuSeconds: 10,
      tools: none,
    });
    expect(l.argv).toEqual(base);
    expect(l.layers).toEqual({
      uidDrop: false,
      capabilities: false,
      netns: false,
      rlimits: false,
      noNewPrivs: false,
    });
    expect(l.notes.join("\n")).toMatch(/netns: needs root[\s\S]*setpriv[\s\S]*prlimit/);
    const unreachable = buildLaunch({
      base,
      spec: spec(),
      supervisorUid: 0,
      identity: nobody,
      cpuSeconds: 10,
      tools,
      noUidDrop: "/root is not searchable",
    });
    expect(unreachable.layers).toMatchObject({ uidDrop: false, capabilities: true });
    expect(unreachable.argv).toContain("--bounding-set=-all");
    expect(unreachable.notes.join()).toContain("/root is not searchable");
  });
});

describe("landlock rules", () => {
  test("work dir read-write, declared globs widened to their directory, exec dirs only with exec", () => {
    const s = spec({ fsRead: ["/proc/**", "/etc/passwd"], fsWrite: ["/var/lib/outpost/**"] });
    expect(landlockRules(s, "/w")).toEqual([
      { path: "/w", access: READ_WRITE },
      { path: "/proc", access: READ },
      { path: "/etc/passwd", access: READ },
      { path: "/var/lib/outpost", access: READ_WRITE },
    ]);
    const withExec = landlockRules(spec({ exec: true }), "/w", {
      executable: "/opt/o/agent",
      installDir: "/opt/o",
    });
    expect(withExec).toContainEqual({ path: "/usr", access: READ_EXEC });
    expect(withExec).toContainEqual({ path: "/opt/o/agent", access: READ_EXEC });
    // A helper of the agent's own executable cannot start without its /proc/self (Bun 1.4.5).
    expect(withExec).toContainEqual({ path: "/proc", access: READ });
    expect(landlockRules(spec(), "/w").some((r) => r.path === "/proc")).toBe(false);
    expect(landlockRules(spec(), "/w").some((r) => (r.access & READ_EXEC) === READ_EXEC)).toBe(false);
  });
});

describe("memory enforcement", () => {
  test("cgroup v1 (no cgroup.controllers) → watchdog, with the reason", () => {
    const v1 = join(dir, "v1");
    mkdirSync(join(v1, "memory"), { recursive: true });
    expect(detectCgroupV2(v1, () => "4:memory:/\n")).toMatchObject({ available: false });
    expect(detectCgroupV2(v1).reason).toContain("cgroup v1");
  });

  test("cgroup v2 without the memory controller delegated → watchdog", () => {
    const v2 = join(dir, "v2a");
    mkdirSync(join(v2, "system.slice/outpost.service"), { recursive: true });
    writeFileSync(join(v2, "cgroup.controllers"), "cpu io memory pids\n");
    writeFileSync(join(v2, "system.slice/outpost.service/cgroup.subtree_control"), "cpu\n");
    const s = detectCgroupV2(v2, () => "0::/system.slice/outpost.service\n");
    expect(s.available).toBe(false);
    expect(s.reason).toContain("memory controller not delegated");
  });

  test("cgroup v2 with memory delegated: a host cgroup gets memory.max and the pid", () => {
    const v2 = join(dir, "v2b");
    const own = join(v2, "system.slice/outpost.service");
    mkdirSync(own, { recursive: true });
    writeFileSync(join(v2, "cgroup.controllers"), "cpu memory\n");
    writeFileSync(join(own, "cgroup.subtree_control"), "memory pids\n");
    const s = detectCgroupV2(v2, () => "0::/system.slice/outpost.service\n");
    expect(s).toEqual({ available: true, parent: own, reason: `cgroup v2 at ${own}` });
    const cg = createHostCgroup(own, "scanner", 256 * 1024 * 1024);
    expect(readFileSync(join(cg, "memory.max"), "utf8")).toBe(`${256 * 1024 * 1024}\n`);
    expect(readFileSync(join(cg, "memory.swap.max"), "utf8")).toBe("0\n");
    writeFileSync(join(cg, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n");
    expect(cgroupOomKills(cg)).toBe(2);
  });

  test("this machine: the real detection gives a reason either way", () => {
    const s = detectCgroupV2();
    expect(s.reason.length).toBeGreaterThan(0);
  });

  test("RSS and CPU come from /proc; a vanished pid is null", () => {
    const s = sampleProc(process.pid);
    expect(s?.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(s?.cpuSeconds).toBeGreaterThanOrEqual(0);
    expect(sampleProc(2 ** 22 + 7)).toBeNull();
  });

  test("a mapped file the process only reads is not counted against its memory limit (issue 21)", () => {
    // The scanner maps spill files of large objects; a 2 GiB one got it killed for pages the kernel can drop.
    const path = join(dir, "mapped.bin");
    const size = 32 * 1024 * 1024;
    writeFileSync(path, Buffer.alloc(size, 1));
    const vmRss = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
    const before = sampleProc(process.pid)!.rssBytes;
    const vmBefore = vmRss();
    const m = Bun.mmap(path, { shared: false });
    let sum = 0;
    for (let i = 0; i < m.length; i += 4096) sum += m[i]!;
    expect(sum).toBe(size / 4096);
    // The pages are resident (VmRSS grew by most of the file) but not held (anonymous memory did not).
    expect(vmRss() - vmBefore).toBeGreaterThan(size / 2);
    expect(sampleProc(process.pid)!.rssBytes - before).toBeLessThan(size / 4);
  }, 30_000);
});
