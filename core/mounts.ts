/**
 * Facts about the kernel's mount table that several parts read: which
 * filesystem types hold no regular files (nothing to hash, scan or stat), and
 * how /proc/mounts escapes its fields.
 */

/** Kernel pseudo filesystems: no files a sensor, scanner or query should follow. */
export const PSEUDO_FILESYSTEMS: ReadonlySet<string> = new Set([
  "proc",
  "sysfs",
  "cgroup",
  "cgroup2",
  "devpts",
  "mqueue",
  "debugfs",
  "tracefs",
  "securityfs",
  "pstore",
  "bpf",
  "configfs",
  "fusectl",
  "hugetlbfs",
  "autofs",
  "binfmt_misc",
  "nsfs",
  "rpc_pipefs",
]);

/** /proc/mounts escapes space, tab, newline and backslash as octal (`\040`). */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}
