/**
 * Fleet identity in the fleet database (tables of migration
 * 003_identity.sql): enrollments, the last sequence number per agent and the
 * audit trail, shared by every replica on the same database. The file store
 * (store.ts) stays as the format earlier versions wrote; its contents are
 * imported once, into empty tables.
 *
 * Enrollments never change once written (E4), so a replica caches the ones
 * it has seen; a miss asks the database, so an agent enrolled through another
 * replica is known at once. A sequence number advances in one conditional
 * upsert: two replicas given the same heartbeat cannot both accept it (I4).
 */
import { existsSync } from "node:fs";
import { type Driver, num, type Row } from "../db/driver.ts";
import {
  type AuditLog,
  type AuditRecord,
  AuditRecordSchema,
  type Enrollment,
  EnrollmentSchema,
  FileIdentityStore,
  type IdentityStore,
  identityStorePaths,
} from "./store.ts";

/** The audit trail alone: what `contentctl release` commands append to and `release audit` reads. */
export class DbAuditLog implements AuditLog {
  constructor(protected readonly db: Driver) {}

  async appendAudit(r: AuditRecord): Promise<void> {
    const a = AuditRecordSchema.parse(r);
    // Appends happen under the planner lock (engine steps), so MAX + 1 does not race.
    await this.db.run(
      `INSERT INTO audit (ord, at, actor, kind, release_id, grp, reason)
       SELECT COALESCE(MAX(ord), 0) + 1, $1, $2, $3, $4, $5, $6 FROM audit`,
      [a.at, a.actor, a.action, a.release, a.group ?? null, a.reason],
    );
  }

  async audit(): Promise<AuditRecord[]> {
    const rows = await this.db.all("SELECT * FROM audit ORDER BY ord");
    return rows.map((r) =>
      AuditRecordSchema.parse({
        at: r.at,
        actor: r.actor,
        action: r.kind,
        release: r.release_id,
        ...(r.grp === null ? {} : { group: r.grp }),
        reason: r.reason,
      }),
    );
  }
}

export class DbIdentityStore extends DbAuditLog implements IdentityStore {
  private readonly known = new Map<string, Enrollment>();

  /** The store on `db`, with the files an earlier version wrote under `stateDir` imported once. */
  static async open(db: Driver, stateDir: string): Promise<DbIdentityStore> {
    const store = new DbIdentityStore(db);
    await store.importFiles(stateDir);
    return store;
  }

  async enrollment(tenant: string, agentId: string): Promise<Enrollment | undefined> {
    const key = `${tenant}/${agentId}`;
    const cached = this.known.get(key);
    if (cached) return cached;
    const [row] = await this.db.all("SELECT * FROM enrollments WHERE tenant = $1 AND agent_id = $2", [
      tenant,
      agentId,
    ]);
    if (!row) return undefined;
    const e = toEnrollment(row);
    this.known.set(key, e);
    return e;
  }

  async enrollments(): Promise<Enrollment[]> {
    return (await this.db.all("SELECT * FROM enrollments ORDER BY enrolled_ms, tenant, agent_id")).map(
      toEnrollment,
    );
  }

  async enrollmentCounts(tenant: string, sinceMs: number): Promise<{ total: number; recent: number }> {
    const [r] = await this.db.all(
      `SELECT COUNT(*) AS total, SUM(CASE WHEN enrolled_ms >= $2 THEN 1 ELSE 0 END) AS recent
         FROM enrollments WHERE tenant = $1`,
      [tenant, sinceMs],
    );
    return { total: num(r?.total), recent: num(r?.recent) };
  }

  async addEnrollment(e: Enrollment): Promise<void> {
    const v = EnrollmentSchema.parse(e);
    // Committed before the agent is told it is enrolled: a lost enrollment would orphan its key.
    await this.db.run(
      `INSERT INTO enrollments (tenant, agent_id, grp, alg, public_key, vendor, enrolled_at, enrolled_ms)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        v.tenant,
        v.agentId,
        v.group,
        v.alg,
        v.publicKey,
        v.vendor ? 1 : 0,
        v.enrolledAt,
        Date.parse(v.enrolledAt),
      ],
    );
    this.known.set(`${v.tenant}/${v.agentId}`, v);
  }

  async advanceSequence(tenant: string, agentId: string, seq: number): Promise<boolean> {
    const changed = await this.db.run(
      `INSERT INTO agent_seq (agent_key, seq) VALUES ($1, $2)
       ON CONFLICT (agent_key) DO UPDATE SET seq = excluded.seq WHERE agent_seq.seq < excluded.seq`,
      [`${tenant}/${agentId}`, seq],
    );
    return changed > 0;
  }

  /** Every write is committed when it returns. */
  async flush(): Promise<void> {}

  private async importFiles(stateDir: string): Promise<void> {
    const paths = identityStorePaths(stateDir);
    if (!existsSync(paths.enrollments) && !existsSync(paths.audit)) return;
    const [e] = await this.db.all("SELECT COUNT(*) AS n FROM enrollments");
    const [a] = await this.db.all("SELECT COUNT(*) AS n FROM audit");
    if (num(e?.n) > 0 || num(a?.n) > 0) return;
    const files = new FileIdentityStore(stateDir);
    // Sequence numbers are not carried over: a replay after the upgrade is still bounded by the skew window (I5).
    for (const x of await files.enrollments()) await this.addEnrollment(x);
    for (const x of await files.audit()) await this.appendAudit(x);
  }
}

function toEnrollment(r: Row): Enrollment {
  return EnrollmentSchema.parse({
    tenant: r.tenant,
    agentId: r.agent_id,
    group: r.grp,
    alg: r.alg,
    publicKey: r.public_key,
    vendor: num(r.vendor) === 1,
    enrolledAt: r.enrolled_at,
  });
}
