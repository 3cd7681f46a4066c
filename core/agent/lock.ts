/**
 * One agent per state dir. The lock file holds the owner's pid; a lock left
 * by a dead process (kill -9, power loss) is taken over rather than wedging
 * the agent forever — a stuck lock is exactly what RepairKit exists to fix,
 * but the agent should not need it for the common case.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { StoreError } from "../errors.ts";

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function lockHolder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
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
