/**
 * The update state, the agent lock and the index cache, as rules reach them
 * (`state.*`). A broken update-state.json is quarantined and rewritten
 * keeping the rollback floor (per group the highest serial that can be
 * proven); the lock is removed only when no live agent can own it.
 */
import { existsSync, lchownSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { atomicWriteJson } from "../../core/fsutil.ts";
import { pidAlive } from "../../core/pid.ts";
import type { EnvContext } from "./env-files.ts";
import type { CachedIndexFacts } from "./facts.ts";

const LUA_SAFE = (v: unknown) => (v === undefined ? null : v);

export class EnvState {
  constructor(private readonly ctx: EnvContext) {}

  updateState(): Record<string, unknown> {
    const file = this.ctx.paths.updateState;
    if (!existsSync(file)) return { present: false, ok: true };
    try {
      const data = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      if (data.schema !== 1 || typeof data.groups !== "object" || data.groups === null) {
        return { present: true, ok: false, error: "not an update state (schema or groups missing)" };
      }
      return {
        present: true,
        ok: true,
        consecutiveFailures: LUA_SAFE(data.consecutiveFailures),
        lastSuccess: LUA_SAFE(data.lastSuccess) ?? false,
        lastAttempt: LUA_SAFE(data.lastAttempt) ?? false,
      };
    } catch (e) {
      return { present: true, ok: false, error: (e as Error).message };
    }
  }

  /**
   * Quarantines an unreadable update-state.json and writes a fresh one that
   * keeps the rollback floor: per group the highest index serial either
   * salvaged from the broken file's text or read from a cached index whose
   * signature still verifies. What cannot be recovered (history, backoff)
   * starts over.
   */
  resetUpdateState(): Record<string, unknown> {
    const file = this.ctx.paths.updateState;
    let salvaged: Record<string, number> = {};
    let quarantined: string | null = null;
    if (existsSync(file)) {
      const text = readFileSync(file).toString("latin1");
      salvaged = salvageSerials(text);
      quarantined = this.ctx.files.quarantine("update-state.json");
    }
    const groups: Record<string, { lastSerial: number; lastIndexSha384: string }> = {};
    const sources: Record<string, string> = {};
    for (const c of this.ctx.prepared.cache) {
      if (c.verified && c.serial !== null && c.sha384) {
        groups[c.group] = { lastSerial: c.serial, lastIndexSha384: c.sha384 };
        sources[c.group] = "verified cached index";
      }
    }
    for (const [group, serial] of Object.entries(salvaged)) {
      const have = groups[group];
      // Without the index bytes we know only that `serial` was accepted: keep serial-1 as the floor,
      // so that index (and anything newer) is accepted again and anything older is still refused.
      if (!have || have.lastSerial < serial - 1) {
        groups[group] = { lastSerial: Math.max(0, serial - 1), lastIndexSha384: "" };
        sources[group] = "salvaged from the broken file";
      }
    }
    atomicWriteJson(
      file,
      {
        schema: 1,
        groups,
        lastAttempt: null,
        lastSuccess: null,
        consecutiveFailures: 0,
        recentRejections: [],
      },
      0o600,
    );
    lchownSync(file, this.ctx.facts.agentUid, this.ctx.facts.agentGid);
    return {
      quarantined: quarantined ?? false,
      preserved: Object.fromEntries(Object.entries(groups).map(([g, v]) => [g, v.lastSerial])),
      sources,
    };
  }

  lock(): Record<string, unknown> {
    const file = this.ctx.paths.lock;
    if (!existsSync(file)) return { present: false };
    let raw = "";
    try {
      raw = readFileSync(file, "utf8").slice(0, 64);
    } catch (e) {
      return { present: true, readable: false, error: (e as Error).message };
    }
    const pid = Number(raw.trim());
    if (!Number.isInteger(pid) || pid <= 0)
      return { present: true, readable: true, pid: false, alive: false, raw };
    const alive = pidAlive(pid);
    return { present: true, readable: true, pid, alive, agent: alive ? looksLikeAgent(pid) : false, raw };
  }

  /** Removes agent.lock only when no live agent can own it. */
  removeStaleLock(): boolean {
    const l = this.lock();
    if (!l.present) return false;
    if (this.ctx.mode !== "offline")
      throw new HandlerError("HND_REPAIR_REFUSED", "the agent is running: its lock is not stale");
    if (l.alive && l.agent !== false) {
      throw new HandlerError("HND_REPAIR_REFUSED", `agent.lock is held by live process ${l.pid}`);
    }
    rmSync(this.ctx.paths.lock, { force: true });
    return true;
  }

  indexCache(): CachedIndexFacts[] {
    return this.ctx.prepared.cache;
  }

  clearIndexCache(group: unknown): void {
    if (typeof group !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(group)) {
      throw new HandlerError("HND_REPAIR_ARGS", "state.clear_index_cache: bad group name");
    }
    rmSync(join(this.ctx.paths.indexCache, group), { recursive: true, force: true });
    this.ctx.prepared.cache = this.ctx.prepared.cache.filter((c) => c.group !== group);
  }
}

/** `"<group>": { … "lastSerial": N …}` pairs that survive in a damaged file's text. */
export function salvageSerials(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(
    /"([a-z0-9][a-z0-9-]{0,63})"\s*:\s*\{[^{}]*?"lastSerial"\s*:\s*(\d{1,15})/g,
  )) {
    const serial = Number(m[2]);
    out[m[1]!] = Math.max(out[m[1]!] ?? 0, serial);
  }
  return out;
}

/** A live process holding the lock that is not an Outpost agent (pid reuse after a crash). */
function looksLikeAgent(pid: number): boolean | null {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    return /\bagent\b|outpost/.test(cmd);
  } catch {
    return null;
  }
}
