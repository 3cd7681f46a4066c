/**
 * One writer of release state at a time, across every replica and every
 * `contentctl release` command on the same database: the planner tick,
 * promote, abort and start all run under it.
 *
 *   PostgreSQL  a session-level advisory lock on a connection of its own;
 *               a replica that dies drops its connection and with it the lock.
 *   SQLite      a lease row (owner, expiry) renewed while held; a lease whose
 *               owner died is taken over when it expires, or at once when the
 *               owner was a process on this host that no longer exists.
 *
 * A holder killed mid-step loses nothing: every step of the engine is
 * persisted (intent before effect) in its own transaction, and the next
 * holder resumes from there.
 */
import { hostname } from "node:os";
import { UpdateError } from "../../core/errors.ts";
import { pidAlive } from "../../core/pid.ts";
import { type Driver, num } from "./driver.ts";

const PLANNER_LOCK = 0x72656c73; // "rels"
const LEASE = "release-planner";

export interface LockOptions {
  /** How long to wait for another holder (0: try once). */
  waitMs?: number;
  leaseMs?: number;
}

export class PlannerLock {
  readonly owner = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`;
  constructor(private readonly db: Driver) {}

  /** Runs `fn` holding the lock; undefined when another holder kept it for the whole wait. */
  async tryWith<T>(fn: () => Promise<T>, opts: LockOptions = {}): Promise<{ value: T } | undefined> {
    return this.db.dialect === "postgres" ? this.withAdvisory(fn, opts) : this.withLease(fn, opts);
  }

  /** Like tryWith, but a lock held past the wait is an error (REL_LOCKED). */
  async with<T>(fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const r = await this.tryWith(fn, { waitMs: 15_000, ...opts });
    if (!r) {
      const holder = await this.holder();
      throw new UpdateError(
        "REL_LOCKED",
        `${this.db.where}: release state is locked by ${holder ?? "another replica"}; try again`,
        { file: this.db.where },
      );
    }
    return r.value;
  }

  /** Who holds the lock, if anyone (for messages and tests). */
  async holder(): Promise<string | undefined> {
    if (this.db.dialect === "postgres") {
      const rows = await this.db.all(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted",
        [PLANNER_LOCK],
      );
      return rows[0] ? `backend pid ${rows[0].pid}` : undefined;
    }
    const rows = await this.db.all("SELECT owner, expires_at FROM leases WHERE name = $1", [LEASE]);
    const r = rows[0];
    return r && num(r.expires_at) > Date.now() ? String(r.owner) : undefined;
  }

  private async withAdvisory<T>(fn: () => Promise<T>, opts: LockOptions): Promise<{ value: T } | undefined> {
    const conn = await this.db.reserve();
    try {
      const deadline = Date.now() + (opts.waitMs ?? 0);
      for (;;) {
        const [r] = await conn.all("SELECT pg_try_advisory_lock($1) AS ok", [PLANNER_LOCK]);
        if (r?.ok === true || r?.ok === "t") break;
        if (Date.now() >= deadline) return undefined;
        await Bun.sleep(50);
      }
      try {
        return { value: await fn() };
      } finally {
        await conn.all("SELECT pg_advisory_unlock($1)", [PLANNER_LOCK]).catch(() => {});
      }
    } finally {
      conn.release();
    }
  }

  private async withLease<T>(fn: () => Promise<T>, opts: LockOptions): Promise<{ value: T } | undefined> {
    const leaseMs = opts.leaseMs ?? 30_000;
    const deadline = Date.now() + (opts.waitMs ?? 0);
    while (!(await this.acquireLease(leaseMs))) {
      if (Date.now() >= deadline) return undefined;
      await Bun.sleep(50);
    }
    // Renewed well before expiry, so a long step (re-packing a package) keeps the lease.
    const renew = setInterval(() => {
      this.acquireLease(leaseMs).catch(() => {});
    }, leaseMs / 3);
    try {
      return { value: await fn() };
    } finally {
      clearInterval(renew);
      await this.db
        .run("DELETE FROM leases WHERE name = $1 AND owner = $2", [LEASE, this.owner])
        .catch(() => {});
    }
  }

  private async acquireLease(leaseMs: number): Promise<boolean> {
    const now = Date.now();
    return this.db.tx(async (q) => {
      const [cur] = await q.all("SELECT owner, expires_at FROM leases WHERE name = $1", [LEASE]);
      const free =
        !cur || cur.owner === this.owner || num(cur.expires_at) < now || deadLocalOwner(String(cur.owner));
      if (!free) return false;
      await q.run(
        `INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`,
        [LEASE, this.owner, now + leaseMs],
      );
      return true;
    });
  }
}

/** A lease held by a process of this host that no longer exists is free now, not at expiry. */
function deadLocalOwner(owner: string): boolean {
  const [host, pid] = owner.split(":");
  return host === hostname() && Number(pid) > 0 && Number(pid) !== process.pid && !pidAlive(Number(pid));
}
