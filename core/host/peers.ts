/**
 * Which processes are host processes, for the control plane's peer check
 * (core/control/peer-guard.ts, issue 12 item 6). The HostManager registers
 * each host's pid while it runs; a peer is a host process when it is one of
 * them or descends from one (the query host runs each query in a child).
 * Anything else — the supervisor itself, an administrator's CLI, even a
 * child the agent started for another reason — is not.
 */
import { readdirSync, readFileSync } from "node:fs";

const hostPids = new Set<number>();

/** Registers a running host process; returns its removal. */
export function trackHostProcess(pid: number): () => void {
  hostPids.add(pid);
  return () => {
    hostPids.delete(pid);
  };
}

export function trackedHostCount(): number {
  return hostPids.size;
}

/** The registered host pids (not their descendants). */
export function trackedHostPids(): number[] {
  return [...hostPids];
}

/** Parent pid from /proc/PID/stat, or null when the process is gone. */
export function parentOf(pid: number, proc = "/proc"): number | null {
  try {
    const stat = readFileSync(`${proc}/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parentheses: fields after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return Number.isInteger(ppid) ? ppid : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is a host process or one of its descendants. */
export function isHostProcess(pid: number, proc = "/proc"): boolean {
  if (hostPids.size === 0) return false;
  let p: number | null = pid;
  // Bounded: a pid chain is short, and a cycle (pid reuse mid-walk) must not spin.
  for (let depth = 0; p !== null && p > 1 && depth < 64; depth++) {
    if (hostPids.has(p)) return true;
    if (p === process.pid) return false;
    p = parentOf(p, proc);
  }
  return false;
}

/** Every pid of every host process tree (for finding the owner of a socket inode). */
export function hostProcessTree(proc = "/proc"): number[] {
  const out: number[] = [];
  const queue = [...hostPids];
  while (queue.length && out.length < 4096) {
    const pid = queue.shift()!;
    out.push(pid);
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`${proc}/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        for (const c of readFileSync(`${proc}/${pid}/task/${tid}/children`, "utf8").split(" ")) {
          if (c.trim()) queue.push(Number(c));
        }
      } catch {
        // No children file (kernel without CONFIG_PROC_CHILDREN) or the task ended.
      }
    }
  }
  return out;
}
