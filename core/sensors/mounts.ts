/**
 * The mount table, for on-access marks: which mounts sit at or under the
 * configured paths (each needs its own FAN_MARK_MOUNT — a mount mark on
 * "/" does not reach /tmp, /dev/shm or /home on their own filesystems),
 * which of them are pseudo filesystems with no regular file content to
 * scan, and a watcher that wakes when the table changes.
 *
 * The watcher is a reader thread asleep in poll() on /proc/self/mountinfo:
 * the kernel reports POLLPRI|POLLERR there once per change of this mount
 * namespace (mount, unmount, move). No timer, no CPU while nothing mounts.
 */
import { openSync, readFileSync } from "node:fs";
import { SensorReader } from "./reader.ts";

export interface MountEntry {
  /** The kernel's mount id (mountinfo field 1): a remount elsewhere is a new id. */
  id: number;
  /** major:minor of the filesystem. */
  dev: string;
  mountPoint: string;
  fsType: string;
}

/**
 * Filesystems skipped, and why: none holds regular files a program could drop and open, and several
 * (proc, sysfs, cgroup) are opened thousands of times a second by ordinary tools, each open a held
 * permission event for nothing. devtmpfs holds device nodes: every process opens /dev/null and
 * /dev/urandom; /dev/shm (tmpfs) and other mounts under /dev are marked on their own.
 */
export const PSEUDO_FILESYSTEMS: Readonly<Record<string, string>> = {
  proc: "kernel process information",
  sysfs: "kernel objects",
  cgroup: "control group settings",
  cgroup2: "control group settings",
  devpts: "pseudo terminals",
  devtmpfs: "device nodes (every process opens /dev/null)",
  securityfs: "security module settings",
  debugfs: "kernel debug files",
  tracefs: "kernel tracing",
  bpf: "pinned BPF objects",
  pstore: "kernel crash records",
  configfs: "kernel object settings",
  fusectl: "FUSE connections",
  mqueue: "POSIX message queues",
  autofs: "automount triggers",
  nsfs: "namespace handles",
  binfmt_misc: "binary format registrations",
  efivarfs: "EFI variables",
  hugetlbfs: "huge pages (no read or write)",
  rpc_pipefs: "NFS RPC pipes",
  selinuxfs: "SELinux settings",
};

/** Octal escapes mountinfo uses in paths (\040 space, \011 tab, \012 newline, \134 backslash). */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-");
    if (dash < 6 || !f[4]) continue;
    out.push({
      id: Number(f[0]),
      dev: f[2] ?? "",
      mountPoint: unescapeOctal(f[4]),
      fsType: f[dash + 1] ?? "",
    });
  }
  return out;
}

export function readMounts(): MountEntry[] {
  try {
    return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    return [];
  }
}

export function isAtOrUnder(path: string, root: string): boolean {
  if (root === "/") return path.startsWith("/");
  const r = root.endsWith("/") ? root.slice(0, -1) : root;
  return path === r || path.startsWith(`${r}/`);
}

/** Mounts at or under any of `roots`, split into those to mark and pseudo filesystems to skip. */
export function mountsUnder(
  mounts: MountEntry[],
  roots: string[],
): { mark: MountEntry[]; skip: (MountEntry & { reason: string })[] } {
  const mark: MountEntry[] = [];
  const skip: (MountEntry & { reason: string })[] = [];
  for (const m of mounts) {
    if (!roots.some((r) => isAtOrUnder(m.mountPoint, r))) continue;
    const why = PSEUDO_FILESYSTEMS[m.fsType];
    if (why) skip.push({ ...m, reason: `${m.fsType}: ${why}` });
    else mark.push(m);
  }
  return { mark, skip };
}

/** Calls `onChange` after each change of the mount table (coalesced while one is being handled). */
export class MountWatcher {
  private reader: SensorReader<{ changed: true }> | undefined;
  changes = 0;

  constructor(private readonly onChange: () => void) {}

  start(): string | undefined {
    let fd: number;
    try {
      fd = openSync("/proc/self/mountinfo", "r");
    } catch (e) {
      return `cannot watch the mount table: ${(e as Error).message}`;
    }
    this.reader = new SensorReader<{ changed: true }>(fd, { kind: "mountinfo", maxInFlight: 1 }, () => {
      this.changes++;
      this.onChange();
    });
    this.reader.start();
    return undefined;
  }

  get error(): string | undefined {
    return this.reader?.error;
  }

  async stop(): Promise<void> {
    await this.reader?.stop();
    this.reader = undefined;
  }
}
