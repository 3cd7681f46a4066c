/**
 * Process launch helpers for host groups: the command line (source tree or
 * compiled executable), the private work directory and its ownership, the
 * environment a host gets, and which sandbox layers a started host is
 * missing. buildLaunch (sandbox.ts) wraps the command in those layers.
 */
import { chmodSync, chownSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_RUNTIME_ENV } from "../jsc-options.ts";
import type { Logger } from "../log.ts";
import type { GroupRec } from "./records.ts";
import type { HostIdentity } from "./sandbox.ts";

/** `bun bin/agent.ts host …` from source, `agent host …` from the compiled executable. */
export function defaultHostCommand(
  group: string,
  limits: { maxInbound: number; maxOutbound: number },
): string[] {
  const tail = [
    "host",
    "--group",
    group,
    "--max-inbound",
    String(limits.maxInbound),
    "--max-outbound",
    String(limits.maxOutbound),
  ];
  if (isCompiled()) return [process.execPath, ...tail];
  return [process.execPath, fileURLToPath(new URL("../../bin/agent.ts", import.meta.url)), ...tail];
}

function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/") || import.meta.url.includes("/$bunfs/");
}

export function defaultInstallDir(): string {
  return isCompiled()
    ? dirname(process.execPath)
    : fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
}

/** Layers that should be on for this host but are not, for the start-up warning. */
export function sandboxGaps(g: GroupRec, netNone: boolean, runAs: "agent" | "root", uid: number): string[] {
  const out: string[] = [];
  const ll = g.init?.landlock;
  if (!ll?.fs) out.push(`landlock-fs (${ll?.error ?? "unavailable"})`);
  if (ll?.fs && !ll.net) out.push(`landlock-net (kernel Landlock ABI ${ll.abi} < 4)`);
  if (uid === 0 && runAs === "agent" && !g.launch?.layers.uidDrop) out.push("uid-drop");
  if (uid === 0 && netNone && !g.launch?.layers.netns) out.push("netns");
  if (!g.launch?.layers.rlimits) out.push("rlimits");
  return out;
}

/**
 * STATE/hosts/<group>, 0700, owned by the host's uid; STATE and STATE/hosts
 * get o+x (traverse, not list) so that uid can reach it. When a directory
 * above STATE is closed to that uid, the host keeps uid 0 without any
 * capability (reported as `unreachable`) rather than not running at all.
 */
export function prepareWorkDir(
  hosts: string,
  group: string,
  drop: HostIdentity | null,
  log: Logger,
): { dir: string; unreachable?: string } {
  // `hosts` is STATE/hosts, or a read-only view's private copy of it (core/agent/read-only-view.ts).
  const base = dirname(hosts);
  const dir = join(hosts, group);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (!drop) {
    chownSync(dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    return { dir };
  }
  for (let d = dirname(base); d !== dirname(d); d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) === 0 && st.uid !== drop.uid) {
      const why = `${d} is not searchable by ${drop.user} (uid ${drop.uid})`;
      log.warn("host work dir unreachable for the unprivileged user; keeping uid 0 without capabilities", {
        group,
        dir,
        why,
      });
      return { dir, unreachable: why };
    }
  }
  chownSync(dir, drop.uid, drop.gid);
  for (const d of [hosts, base]) chmodSync(d, (statSync(d).mode & 0o7777) | 0o001);
  return { dir };
}

/** Only what the host needs; the supervisor's environment may hold secrets. */
export function hostEnv(workDir: string): Record<string, string> {
  const env: Record<string, string> = {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: workDir,
    TMPDIR: workDir,
    LANG: "C.UTF-8",
    NO_COLOR: "1",
    // From source, bun would try to cache transpiled files under $HOME: nothing to gain in a sandbox.
    BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0",
    // No once-a-second GC timer in an idle host: it collects when it goes quiet instead (idle-gc.ts).
    BUN_GC_TIMER_DISABLE: "1",
    // No JIT for start-up code that never runs again, no pre-faulted heap supply (jsc-options.ts).
    ...AGENT_RUNTIME_ENV,
  };
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("OUTPOST_") && v !== undefined) env[k] = v;
  }
  return env;
}
