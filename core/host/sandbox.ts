/**
 * The OS side of a host process, decided by the supervisor before spawn:
 * which uid/gid it runs as, which wrappers put it into an empty network
 * namespace, cut its capability bounding set and set its rlimits, where its
 * memory limit is enforced (cgroup v2 or the RSS watchdog), and the Landlock
 * rules the child applies to itself once its code is loaded.
 *
 * Each layer stops something different (docs/handler-host.md):
 *   uid drop      – the host cannot touch root-owned or agent files by DAC
 *   capabilities  – a root host keeps only the capabilities its group lists
 *   netns         – `net: none` hosts have no interface but a down loopback
 *   Landlock fs   – no path outside the declared ones, even for root; no exec
 *   Landlock net  – TCP connect only to declared ports, never bind
 *   Landlock scope– no signals to (or abstract sockets of) the supervisor
 *   rlimits       – CPU seconds (SIGXCPU, then SIGKILL), no core dumps
 *   memory        – cgroup v2 memory.max, else an RSS watchdog that kills
 */
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { FS, type LandlockRule, READ, READ_EXEC, READ_WRITE } from "./landlock.ts";
import { landlockBase, type SandboxSpec } from "./policy.ts";

export interface HostIdentity {
  uid: number;
  gid: number;
  user: string;
}

function parseDb(path: string): string[][] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split(":"));
  } catch {
    return [];
  }
}

/**
 * The unprivileged identity for `runAs: agent`: the `outpost` user when the
 * package created one, else nobody/nogroup. A dedicated user is better
 * (nobody is shared with other daemons), so it is preferred when present.
 */
export function resolveAgentIdentity(
  preferred = "outpost",
  files = { passwd: "/etc/passwd", group: "/etc/group" },
): HostIdentity {
  const users = parseDb(files.passwd);
  const groups = parseDb(files.group);
  const own = users.find((u) => u[0] === preferred);
  if (own && Number(own[2]) > 0) return { uid: Number(own[2]), gid: Number(own[3]), user: preferred };
  const nobody = users.find((u) => u[0] === "nobody");
  const uid = nobody ? Number(nobody[2]) : 65534;
  const group = groups.find((g) => g[0] === "nogroup") ?? groups.find((g) => g[0] === "nobody");
  const gid = group ? Number(group[2]) : nobody ? Number(nobody[3]) : 65534;
  return { uid, gid, user: nobody ? "nobody" : String(uid) };
}

/**
 * Makes a file the supervisor (root) placed in a work dir readable by a host that drops to the agent
 * user: root's, the agent user's group, 0640. The mode is set as such, not at creation: the writer's
 * umask (077 under the systemd unit, core/install/unit.ts) masks the mode a file is created with,
 * and a 0600 keyring or trust root is one the host cannot read.
 */
export function shareWithAgentUser(path: string, user = "outpost"): void {
  chownSync(path, 0, resolveAgentIdentity(user).gid);
  chmodSync(path, 0o640);
}

export interface EnforcementLayers {
  uidDrop: boolean;
  capabilities: boolean;
  netns: boolean;
  landlockFs: boolean;
  landlockNet: boolean;
  landlockScope: boolean;
  rlimits: boolean;
  noNewPrivs: boolean;
  memory: "cgroup" | "watchdog" | "none";
}

export interface Launch {
  argv: string[];
  /** What the wrappers put in place (Landlock is reported later, by the child itself). */
  layers: Pick<EnforcementLayers, "uidDrop" | "capabilities" | "netns" | "rlimits" | "noNewPrivs">;
  uid: number;
  gid: number;
  user: string;
  /** Why a layer is off, for status and the start-up warning. */
  notes: string[];
  /** Set by withStateView (state-view.ts). */
  stateView?: "hidden" | "secrets-masked" | "none";
}

export interface LaunchTools {
  unshare: string | null;
  setpriv: string | null;
  prlimit: string | null;
}

export function findTools(): LaunchTools {
  return { unshare: Bun.which("unshare"), setpriv: Bun.which("setpriv"), prlimit: Bun.which("prlimit") };
}

/** Seconds between RLIMIT_CPU's soft limit (SIGXCPU) and its hard limit (SIGKILL). */
export const CPU_GRACE_SECONDS = 5;

/**
 * Wraps the host command: `unshare --net` (net none, root only), `setpriv`
 * (uid/gid, groups, capability bounding set, no_new_privs), `prlimit`
 * (CPU, core). Each wrapper execs the next, so the spawned pid is the host.
 */
export function buildLaunch(o: {
  base: string[];
  spec: SandboxSpec;
  supervisorUid: number;
  identity: HostIdentity;
  cpuSeconds: number;
  tools: LaunchTools;
  /** Set when the identity cannot be used (e.g. its work dir is unreachable for it): why. */
  noUidDrop?: string;
}): Launch {
  const root = o.supervisorUid === 0;
  const notes: string[] = [];
  const argv: string[] = [];
  const layers = { uidDrop: false, capabilities: false, netns: false, rlimits: false, noNewPrivs: false };
  let uid = o.supervisorUid;
  let gid = process.getgid?.() ?? 0;
  let user = root ? "root" : String(uid);

  if (o.spec.net === "none") {
    if (!root) notes.push("netns: needs root (supervisor is not root)");
    else if (!o.tools.unshare) notes.push("netns: unshare (util-linux) not found");
    else {
      argv.push(o.tools.unshare, "--net", "--");
      layers.netns = true;
    }
  }
  if (o.tools.setpriv) {
    const s = [o.tools.setpriv];
    if (root && o.spec.runAs === "agent" && !o.noUidDrop) {
      s.push(`--reuid=${o.identity.uid}`, `--regid=${o.identity.gid}`, "--clear-groups");
      s.push("--inh-caps=-all", "--bounding-set=-all");
      layers.uidDrop = true;
      layers.capabilities = true;
      ({ uid, gid, user } = o.identity);
    } else if (root && o.spec.runAs === "agent") {
      // Still uid 0, but without a single capability: Landlock and the netns carry the isolation.
      s.push("--inh-caps=-all", "--bounding-set=-all");
      layers.capabilities = true;
      notes.push(`uid: not dropped (${o.noUidDrop}); runs as root with no capabilities`);
    } else if (root) {
      s.push(
        "--inh-caps=-all",
        `--bounding-set=${["-all", ...o.spec.capabilities.map((c) => `+${c}`)].join(",")}`,
      );
      layers.capabilities = true;
      notes.push(
        `uid: runs as root (group allows it), capabilities limited to ${o.spec.capabilities.join(", ") || "none"}`,
      );
    } else {
      notes.push("uid: supervisor is not root; the host runs as the supervisor's user");
    }
    s.push("--no-new-privs", "--");
    argv.push(...s);
    layers.noNewPrivs = true;
  } else {
    notes.push("uid/capabilities: setpriv (util-linux) not found; host keeps the supervisor's identity");
  }
  if (o.tools.prlimit) {
    argv.push(o.tools.prlimit, `--cpu=${o.cpuSeconds}:${o.cpuSeconds + CPU_GRACE_SECONDS}`, "--core=0", "--");
    layers.rlimits = true;
  } else {
    notes.push("rlimits: prlimit (util-linux) not found; CPU time is not limited");
  }
  argv.push(...o.base);
  return { argv, layers, uid, gid, user, notes };
}

/** System directories an `exec: true` host needs to start programs (binaries, loader, libraries). */
const EXEC_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"];

/**
 * The Landlock rules for a host: its work dir read-write (never exec),
 * declared globs widened to their literal directory prefix, and, with exec,
 * the system program directories read+exec, /etc and /proc read-only.
 */
export function landlockRules(
  spec: SandboxSpec,
  workDir: string,
  self: { executable: string; installDir: string } = { executable: process.execPath, installDir: "/" },
): LandlockRule[] {
  const rules: LandlockRule[] = [{ path: workDir, access: READ_WRITE }];
  for (const g of spec.fsRead) rules.push({ path: landlockBase(g), access: READ });
  for (const g of spec.fsWrite) rules.push({ path: landlockBase(g), access: READ_WRITE });
  if (spec.exec) {
    for (const d of EXEC_DIRS) rules.push({ path: d, access: READ_EXEC });
    rules.push({ path: "/etc", access: READ });
    rules.push({ path: "/dev/null", access: READ_WRITE });
    // The agent's own executable (a host may start helpers from it), and from source the tree it runs.
    rules.push({ path: self.executable, access: READ_EXEC });
    rules.push({ path: self.installDir, access: READ });
    // And what such a helper needs to start: Bun aborts at start-up when it may not read
    // /proc/self/cgroup (its memory limit), and a rule can only name /proc, since the helper's
    // /proc/PID does not exist yet. Read-only; other processes' fd, environ, maps and links stay
    // closed to the host by Landlock's ptrace check (docs/handler-host.md).
    rules.push({ path: "/proc", access: READ });
    // A group allowed to write everywhere and exec (install: apt-get, whose dpkg runs maintainer
    // scripts from /var/lib/dpkg/info and opens a pty) needs exec and device ioctls wherever it writes;
    // Landlock then confines it to nothing, and says so rather than failing halfway through dpkg.
    if (spec.fsWrite.some((g) => landlockBase(g) === "/")) {
      rules.push({
        path: "/",
        access: READ_WRITE | FS.EXECUTE | FS.IOCTL_DEV | FS.MAKE_CHAR | FS.MAKE_BLOCK,
      });
    }
  }
  return rules;
}

// ---------------------------------------------------------------- memory

export interface CgroupSupport {
  available: boolean;
  /** The delegated cgroup under which host cgroups are created. */
  parent?: string;
  reason: string;
}

/**
 * cgroup v2 is used when the unified hierarchy is mounted at `root` and the
 * supervisor's own cgroup already delegates the memory controller to its
 * children (systemd `Delegate=yes`). Otherwise the RSS watchdog enforces
 * memory limits. A cgroup v1 host (as this project's CI machine) reports why.
 */
export function detectCgroupV2(
  root = "/sys/fs/cgroup",
  selfCgroup: () => string = () => readFileSync("/proc/self/cgroup", "utf8"),
): CgroupSupport {
  if (!existsSync(join(root, "cgroup.controllers"))) {
    return { available: false, reason: `no cgroup v2 hierarchy at ${root} (cgroup v1 or not mounted)` };
  }
  let own: string | undefined;
  try {
    own = selfCgroup()
      .split("\n")
      .find((l) => l.startsWith("0::"))
      ?.slice(3)
      .trim();
  } catch {
    own = undefined;
  }
  if (own === undefined) return { available: false, reason: "the supervisor is not in a cgroup v2 group" };
  const parent = join(root, own);
  let controllers = "";
  try {
    controllers = readFileSync(join(parent, "cgroup.subtree_control"), "utf8");
  } catch (e) {
    return { available: false, reason: `${parent}: ${(e as Error).message}` };
  }
  if (!controllers.split(/\s+/).includes("memory")) {
    return {
      available: false,
      reason: `${parent}: memory controller not delegated (cgroup.subtree_control)`,
    };
  }
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    return { available: false, reason: `${parent}: not writable` };
  }
  return { available: true, parent, reason: `cgroup v2 at ${parent}` };
}

/** Creates (or reuses) the host's cgroup with memory.max set; returns its path. */
export function createHostCgroup(parent: string, group: string, limitBytes: number): string {
  const dir = join(parent, `outpost-host-${group}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "memory.max"), `${limitBytes}\n`);
  try {
    // Swapping would hide the overrun rather than stop it.
    writeFileSync(join(dir, "memory.swap.max"), "0\n");
  } catch {
    // No swap accounting on this kernel: nothing to disable.
  }
  return dir;
}

export function joinCgroup(dir: string, pid: number): void {
  writeFileSync(join(dir, "cgroup.procs"), `${pid}\n`);
}

/** oom_kill count of a host cgroup (memory.events), 0 when unreadable. */
export function cgroupOomKills(dir: string): number {
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(dir, "memory.events"), "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export interface ProcSample {
  /**
   * Resident memory the process holds: anonymous and shared-memory pages
   * (RssAnon + RssShmem). Clean file-backed pages (RssFile) are left out: the
   * kernel drops them under pressure, and counting them got the scanner
   * killed for mapping a 2 GiB spill file it only reads.
   */
  rssBytes: number;
  cpuSeconds: number;
}

const CLOCK_TICKS = 100;

/** Resident set size and CPU time of `pid` from /proc, or null when it is gone. */
export function sampleProc(pid: number, proc = "/proc"): ProcSample | null {
  try {
    const status = readFileSync(`${proc}/${pid}/status`, "utf8");
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, "m").exec(status)?.[1] ?? 0);
    // Kernels before 4.5 have no RssAnon: fall back to VmRSS.
    const held = /^RssAnon:/m.test(status) ? kb("RssAnon") + kb("RssShmem") : kb("VmRSS");
    const stat = readFileSync(`${proc}/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { rssBytes: held * 1024, cpuSeconds: ticks / CLOCK_TICKS };
  } catch {
    return null;
  }
}
