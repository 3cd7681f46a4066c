/**
 * One agent per state dir. The lock file records the owner's pid together
 * with its start time and the boot id, because after a power loss the pid
 * in a leftover lock is often reused by an unrelated process: a pid alone
 * would wedge the agent until someone deleted the file by hand. A lock whose
 * owner is gone (or is not the process that took it) is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { StoreError } from "../errors.ts";
import { pidAlive } from "../pid.ts";

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or "" if unknown. */
export function processStartTime(pid: number): string {
  const stat = readOr(`/proc/${pid}/stat`, "");
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return rest[19] ?? "";
}

export function bootId(): string {
  return readOr("/proc/sys/kernel/random/boot_id", "").trim();
}

interface LockOwner {
  pid: number;
  start?: string;
  boot?: string;
}

function parseOwner(text: string): LockOwner | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { pid: Number(t) }; // written by an older agent
  try {
    const o = JSON.parse(t) as LockOwner;
    return Number.isInteger(o.pid) && o.pid > 0 ? o : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of the live agent holding the lock, or undefined when the lock is free or stale. */
export function lockHolder(path: string): number | undefined {
  const owner = parseOwner(readOr(path, ""));
  if (!owner || !pidAlive(owner.pid)) return undefined;
  if (owner.start !== undefined || owner.boot !== undefined) {
    // Same pid but another boot or another process start: the pid was recycled.
    if (owner.boot && bootId() && owner.boot !== bootId()) return undefined;
    if (owner.start && processStartTime(owner.pid) && owner.start !== processStartTime(owner.pid))
      return undefined;
    return owner.pid;
  }
  // A bare pid cannot be checked for reuse: believe it only if that process looks like an agent.
  const cmdline = readOr(`/proc/${owner.pid}/cmdline`, "").replace(/\0/g, " ");
  return /agent|outpost|bun/.test(cmdline) ? owner.pid : undefined;
}

/** For read-only views: refuses a state dir a live agent holds, without taking (or creating) the lock. */
export function assertNotLocked(path: string): void {
  const holder = lockHolder(path);
  if (holder !== undefined && holder !== process.pid) {
    throw new StoreError("AGENT_LOCKED", `${path}: state dir is in use by agent pid ${holder}`, {
      file: path,
    });
  }
}

export function acquireLock(path: string): () => void {
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid), boot: bootId() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${JSON.stringify(me)}\n`);
      closeSync(fd);
      return () => {
        if (lockHolder(path) === process.pid) rmSync(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = lockHolder(path);
      if (holder !== undefined && holder !== process.pid) {
        throw new StoreError("AGENT_LOCKED", `${path}: state dir is in use by agent pid ${holder}`, {
          file: path,
        });
      }
      rmSync(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new StoreError("AGENT_LOCKED", `${path}: could not acquire the state lock`, { file: path });
}
