/**
 * Queries the watchdog had to kill stay off the schedule for a while
 * (osquery: 24 h), persisted so a restart of the query host — which is what
 * a runaway query may have caused — does not run the same query again.
 */
import { existsSync, readFileSync } from "node:fs";
import { atomicWriteJson } from "../../core/fsutil.ts";

export interface DenyEntry {
  /** Epoch ms until which the query is not run. */
  until: number;
  /** When it was denylisted. */
  at: number;
  reason: string;
  /** Times the watchdog stopped this query. */
  kills: number;
}

export class Denylist {
  private entries: Record<string, DenyEntry> = {};

  constructor(
    private readonly path: string,
    private readonly now: () => number = Date.now,
  ) {
    if (existsSync(path)) {
      try {
        this.entries = JSON.parse(readFileSync(path, "utf8")) as Record<string, DenyEntry>;
      } catch {
        this.entries = {};
      }
    }
  }

  /** The active entry for a query, if it is denylisted now. */
  get(name: string): DenyEntry | undefined {
    const e = this.entries[name];
    return e && e.until > this.now() ? e : undefined;
  }

  add(name: string, reason: string, durationMs: number): DenyEntry {
    const at = this.now();
    const e: DenyEntry = { until: at + durationMs, at, reason, kills: (this.entries[name]?.kills ?? 0) + 1 };
    this.entries[name] = e;
    this.save();
    return e;
  }

  remove(name: string): boolean {
    if (!this.entries[name]) return false;
    delete this.entries[name];
    this.save();
    return true;
  }

  /** Active entries, soonest expiry first. */
  list(): ({ name: string } & DenyEntry)[] {
    const now = this.now();
    return Object.entries(this.entries)
      .filter(([, e]) => e.until > now)
      .map(([name, e]) => ({ name, ...e }))
      .sort((a, b) => a.until - b.until);
  }

  private save(): void {
    // Expired entries are dropped on write, so the file stays small.
    const now = this.now();
    for (const [k, e] of Object.entries(this.entries)) if (e.until <= now) delete this.entries[k];
    atomicWriteJson(this.path, this.entries, 0o600);
  }
}
