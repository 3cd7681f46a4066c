/**
 * The state directory as a host process sees it (issue 12 item 6).
 *
 * STATE holds the agent's secrets: the control-plane token and socket
 * (control.token, control.sock), every group's content keyring
 * (hosts/<group>/content-keys.json), the update memory. Landlock alone does
 * not hide them from a root host that may read `/**` (query), and a
 * pathname unix socket is not cut off by an empty network namespace. So each
 * host starts in a private mount namespace (`unshare --mount`, propagation
 * private: nothing leaks back to the supervisor) where, before it drops its
 * privileges:
 *
 *  V1 a host that declares no path under STATE sees an empty, read-only
 *     tmpfs at STATE with only its own work dir bound back in: the token,
 *     the socket, other groups' keys and the content store do not exist;
 *  V2 a host that declares STATE paths (repair fixes the agent's own files)
 *     keeps STATE, but STATE/hosts is an empty tmpfs with only its own work
 *     dir bound back (no other group's keys), and control.token is covered
 *     by an empty 0600 root file on that private tmpfs (never a shared
 *     inode like /dev/null: RepairKit "fixes" the mode of what it sees).
 *     The token is created before such a host starts and rewritten in place
 *     by the control plane (core/control/token-file.ts), because a rename
 *     over a mount point in another namespace would silently lift the
 *     cover. control.json is not secret, and control.sock stays visible so
 *     RepairKit can still clear a stale one; the control plane refuses host
 *     processes by their peer credentials (core/control/peer-guard.ts).
 *
 * The mounts are made by /bin/sh + mount(8) between `unshare` and `setpriv`
 * (root is needed for both); each link execs the next, so the spawned pid
 * is still the host.
 *
 * V1 is one exec of mount(8), `mount -a` over a small fstab the supervisor
 * writes (`prepareHiddenView`): an empty skeleton of STATE, root's and
 * read-only, bound over STATE (bind + read-only + nosuid,nodev,noexec: what
 * the tmpfs, the bind and the remount took three execs of mount for), then
 * the work dir bound back onto its empty directory in the skeleton. The
 * skeleton and the fstab live under STATE/hosts/.state-view/, which no host
 * sees: V1 hosts see the skeleton at STATE, V2 hosts an empty tmpfs at
 * STATE/hosts. A host that could write there could add a bind of the token
 * to another group's next start; none can.
 *
 * The work dir is bound from the current directory of the process that
 * mounts (/proc/self/cwd, or "." for the shell's mount), which still points
 * at the real directory after the skeleton or the tmpfs covers its path,
 * with --no-canonicalize so mount(8) does not turn it back into a path string.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { atomicWriteFile } from "../fsutil.ts";
import type { SandboxSpec } from "./policy.ts";

export interface StateViewTools {
  unshare: string | null;
  mount: string | null;
  sh: string | null;
}

export function findStateViewTools(): StateViewTools {
  return { unshare: Bun.which("unshare"), mount: Bun.which("mount"), sh: Bun.which("sh") };
}

export interface StateView {
  /** Wrapper argv to put in front of the rest of the launch (empty when not applied). */
  prefix: string[];
  /** "hidden" (V1), "secrets-masked" (V2), or "none". */
  mode: "hidden" | "secrets-masked" | "none";
  /** Why the view could not be set up, for status notes. */
  note?: string;
}

/** Files in STATE a V2 host must not see (relative to STATE). */
export const STATE_SECRETS = ["control.token"] as const;

/** Whether `path` is STATE or lies inside it. */
export function insideState(stateDir: string, path: string): boolean {
  const rel = relative(stateDir, path);
  return rel === "" || (!rel.startsWith("..") && !rel.startsWith("/"));
}

/** Whether any declared path of the host lies inside STATE (V1 vs V2). */
export function declaresState(spec: Pick<SandboxSpec, "fsRead" | "fsWrite">, stateDir: string): boolean {
  return [...spec.fsRead, ...spec.fsWrite].some((g) => insideState(stateDir, g.replace(/\/\*\*$/, "")));
}

// $1 STATE, $2 work dir, $3 mode, $4 the view's fstab (hidden) or "-", $5 the CPU-time limit
// "SOFT:HARD" (seconds) or "-"; the rest is the command to exec. `set -e`: a mount (or a limit)
// that fails stops the host from starting at all rather than letting it run with the secrets in
// view. The limits are set here, with the shell's own ulimit, instead of by an exec of prlimit
// further down the chain (foldLaunch): rlimits pass through exec and the uid drop unchanged, and
// the host cannot raise a hard limit.
const SCRIPT = `set -eu
state=$1; work=$2; mode=$3; fstab=$4; cpu=$5; shift 5
if [ "$cpu" != - ]; then
  # Soft before hard (a hard limit below the inherited soft one is refused); an inherited hard limit
  # below the new soft one (root may raise it) is raised first.
  ulimit -S -t "\${cpu%:*}" 2>/dev/null || ulimit -H -t "\${cpu#*:}"
  ulimit -S -t "\${cpu%:*}"; ulimit -H -t "\${cpu#*:}"; ulimit -c 0
fi
# V2 (and V1 without its fstab): the bind target is made by mount itself (X-mount.mkdir, util-linux
# 2.35 and later): one exec fewer per host start. An older mount ignores the option and fails on the
# missing target; mkdir then. In a subshell with umask 022: the supervisor may run with 077 (the
# systemd unit's UMask), and an unprivileged host must pass through the directories made here; the
# host itself keeps the supervisor's umask.
bind_work() {
  ( umask 022
    mount -o X-mount.mkdir --no-canonicalize --bind . "$work" 2>/dev/null ||
      { mkdir -p "$work"; mount --no-canonicalize --bind . "$work"; } )
}
cd "$work"
if [ "$mode" = hidden ] && [ "$fstab" != - ]; then
  mount -a --no-canonicalize -T "$fstab"
elif [ "$mode" = hidden ]; then
  # The supervisor could not write the fstab (a read-only STATE/hosts): the same view, three mounts.
  mount -t tmpfs -o mode=0711,size=64k,nosuid,nodev,noexec outpost-state "$state"
  bind_work
  mount -o remount,ro "$state"
else
  mount -t tmpfs -o mode=0711,size=64k,nosuid,nodev,noexec outpost-hosts "$state/hosts"
  bind_work
  # The cover is an empty 0600 root file on this namespace's own tmpfs, never a shared inode such as
  # /dev/null: a repair rule that "fixes" the mode of what it sees must not reach outside its view.
  umask 077
  : > "$state/hosts/.masked"
  for f in ${STATE_SECRETS.join(" ")}; do
    if [ -e "$state/$f" ]; then mount --bind "$state/hosts/.masked" "$state/$f"; fi
  done
fi
cd "$work"
exec "$@"`;

/**
 * The wrapper that gives a host its view of STATE. Needs root (mount
 * namespaces) and util-linux; without them the host runs with STATE in
 * view (Landlock and the uid drop still apply) and the note says why.
 */
export function stateView(o: {
  spec: Pick<SandboxSpec, "fsRead" | "fsWrite">;
  stateDir: string;
  workDir: string;
  supervisorUid: number;
  tools: StateViewTools;
  /** Writes the V1 view's skeleton and fstab, returns the fstab's path (tests: a stand-in). */
  prepareHidden?: (stateDir: string, workDir: string) => string;
}): StateView {
  if (o.supervisorUid !== 0) {
    return {
      prefix: [],
      mode: "none",
      note: "state view: needs root (supervisor is not root); STATE is in view",
    };
  }
  const missing = (["unshare", "mount", "sh"] as const).filter((t) => !o.tools[t]);
  if (missing.length) {
    return {
      prefix: [],
      mode: "none",
      note: `state view: ${missing.join(", ")} not found; STATE is in view`,
    };
  }
  const mode = declaresState(o.spec, o.stateDir) ? "secrets-masked" : "hidden";
  // A read-only view (work dir outside STATE, core/agent/read-only-view.ts) creates nothing in STATE:
  // a token that does not exist has nothing to cover (the script masks only what exists).
  const viewOnly = !insideState(o.stateDir, o.workDir);
  if (mode === "secrets-masked" && !viewOnly) precreateToken(o.stateDir);
  let fstab = "-";
  let note: string | undefined;
  if (mode === "hidden") {
    try {
      fstab = (o.prepareHidden ?? prepareHiddenView)(o.stateDir, o.workDir);
    } catch (e) {
      note = `state view: ${(e as Error).message}; the view is made with a tmpfs instead`;
    }
  }
  return {
    prefix: [
      o.tools.unshare!,
      "--mount",
      "--propagation",
      "private",
      "--",
      o.tools.sh!,
      "-c",
      SCRIPT,
      "outpost-state-view",
      o.stateDir,
      o.workDir,
      mode,
      fstab,
      "-",
    ],
    mode,
    ...(note ? { note } : {}),
  };
}

/** Where a group's V1 skeleton and fstab live: beside the work dirs, in no host's view. */
export function hiddenViewPaths(workDir: string): { skeleton: string; fstab: string } {
  const base = join(dirname(workDir), HIDDEN_VIEW_DIR);
  return { skeleton: join(base, basename(workDir)), fstab: join(base, `${basename(workDir)}.fstab`) };
}

/** The directory under STATE/hosts (or a read-only view's copy of it) that holds the V1 views. */
export const HIDDEN_VIEW_DIR = ".state-view";

/** A path as an fstab field: whitespace and backslashes octal-escaped, as libmount unescapes them. */
export function fstabField(path: string): string {
  return path.replace(/[\\\s]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/**
 * The fstab of a V1 view (pure): the skeleton read-only over STATE, then the work dir bound back
 * from the mounting process's current directory when it lies inside STATE.
 */
export function hiddenViewFstab(stateDir: string, workDir: string, skeleton: string): string {
  const lines = [`${fstabField(skeleton)} ${fstabField(stateDir)} none bind,ro,nosuid,nodev,noexec 0 0`];
  if (insideState(stateDir, workDir)) {
    lines.push(`/proc/self/cwd ${fstabField(workDir)} none bind 0 0`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Writes what a V1 view mounts (idempotent; rewritten only when it differs) and returns the fstab's
 * path. The skeleton holds only the directories down to the work dir, 0711 like the tmpfs it
 * replaces: a host can pass through them to its work dir and list nothing.
 */
export function prepareHiddenView(stateDir: string, workDir: string): string {
  const { skeleton, fstab } = hiddenViewPaths(workDir);
  const rel = relative(stateDir, workDir);
  mkdirSync(dirname(fstab), { recursive: true, mode: 0o700 });
  // Each directory down to the work dir's mount point, 0711 whatever the supervisor's umask (the
  // systemd unit runs it with 077, and mkdir's mode is masked by it): a host that is not root must
  // pass through them.
  const chain = [skeleton];
  if (insideState(stateDir, workDir))
    for (const part of rel.split("/")) chain.push(join(chain.at(-1)!, part));
  for (const dir of chain) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o711);
  }
  const want = hiddenViewFstab(stateDir, workDir, skeleton);
  let have: string | undefined;
  try {
    have = readFileSync(fstab, "utf8");
  } catch {
    // Not written yet.
  }
  if (have !== want) atomicWriteFile(fstab, want, 0o600);
  return fstab;
}

/**
 * V2: the token file must exist when the host starts so that /dev/null can
 * cover it; the control plane then writes the token into this same inode.
 */
function precreateToken(stateDir: string): void {
  const token = join(stateDir, "control.token");
  if (existsSync(token)) return;
  try {
    closeSync(openSync(token, "wx", 0o600));
  } catch {
    // Created meanwhile by the control plane: fine, it exists.
  }
}

let cachedTools: StateViewTools | undefined;

/**
 * Two execs fewer in every host start, with the same result. Pure but for taking words off `rest`
 * (the launch that follows the view); returns the prefix to put in front of what is left.
 *  - The launch starts with `unshare --net --` (sandbox.ts, net none): the view's `unshare --mount`
 *    creates the network namespace too (its mounts need no network).
 *  - The launch holds `prlimit --cpu=SOFT:HARD --core=0 --`: the view's shell sets those limits.
 */
export function foldLaunch(prefix: string[], rest: string[]): string[] {
  if (prefix.length === 0) return prefix;
  let out = prefix;
  if (rest[0] === prefix[0] && rest[1] === "--net" && rest[2] === "--") {
    rest.splice(0, 3);
    out = [prefix[0]!, "--net", ...prefix.slice(1)];
  }
  const at = rest.findIndex((w) => w === "prlimit" || w.endsWith("/prlimit"));
  const cpu = at >= 0 ? /^--cpu=(\d+):(\d+)$/.exec(rest[at + 1] ?? "") : null;
  if (cpu && rest[at + 2] === "--core=0" && rest[at + 3] === "--" && out.at(-1) === "-") {
    rest.splice(at, 4);
    out = [...out.slice(0, -1), `${cpu[1]}:${cpu[2]}`];
  }
  return out;
}

/** Puts the state view in front of a built launch (manager hook); returns the view's mode. */
export function withStateView(
  launch: { argv: string[]; notes: string[]; stateView?: StateView["mode"] },
  o: {
    spec: Pick<SandboxSpec, "fsRead" | "fsWrite">;
    stateDir: string;
    workDir: string;
    supervisorUid: number;
  },
): StateView["mode"] {
  cachedTools ??= findStateViewTools();
  const view = stateView({ ...o, tools: cachedTools });
  launch.argv.unshift(...foldLaunch(view.prefix, launch.argv));
  if (view.note) launch.notes.push(view.note);
  launch.stateView = view.mode;
  return view.mode;
}
