/**
 * Persistence of fleet identity: enrollments (agent public keys and the
 * group the fleet assigned), the last heartbeat sequence number per agent
 * (replay protection) and the operator audit trail. Behind one small async
 * interface so a SQL implementation (fleet/db) drops in beside the file one:
 *
 *   STATE/identity/enrollments.jsonl  one line per enrollment, appended and fsynced (never rewritten)
 *   STATE/identity/sequences.json     flushed on every scheduler tick and on stop
 *   STATE/audit.jsonl                 one line per operator or scheduler action, appended (O_APPEND),
 *                                     so `contentctl release promote` in another process adds to it too
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { StoreError } from "../../core/errors.ts";
import { atomicWriteJson } from "../../core/fsutil.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";

export const EnrollmentSchema = lazySchema(() =>
  z
    .object({
      tenant: z.string(),
      agentId: z.string(),
      /** Assigned from the tenant's config at enrollment; what heartbeats claim is ignored. */
      group: z.string(),
      alg: z.literal("Ed25519"),
      publicKey: z.string(),
      /** Enrolled with a vendor tenant's token (may count in vendorOnly groups). */
      vendor: z.boolean(),
      enrolledAt: z.iso.datetime(),
    })
    .strict(),
);

export const AuditRecordSchema = lazySchema(() =>
  z
    .object({
      at: z.iso.datetime(),
      /** Who: an operator name, `cli:<os user>`, or `scheduler` for the automatic gate. */
      actor: z.string(),
      action: z.enum(["start", "promote", "force-promote", "abort", "close", "stalled"]),
      release: z.string(),
      group: z.string().optional(),
      reason: z.string(),
    })
    .strict(),
);

export type Enrollment = z.infer<typeof EnrollmentSchema>;
export type AuditRecord = z.infer<typeof AuditRecordSchema>;

/** The operator audit trail: appended by whoever acts (serve's scheduler, an operator's CLI). */
export interface AuditLog {
  appendAudit(r: AuditRecord): Promise<void>;
  audit(): Promise<AuditRecord[]>;
}

export interface IdentityStore extends AuditLog {
  enrollment(tenant: string, agentId: string): Promise<Enrollment | undefined>;
  enrollments(): Promise<Enrollment[]>;
  /** Enrollments of a tenant: all of them, and those since `sinceMs`. */
  enrollmentCounts(tenant: string, sinceMs: number): Promise<{ total: number; recent: number }>;
  addEnrollment(e: Enrollment): Promise<void>;
  /** Records `seq` for the agent when it is greater than the last one; false (a replay) otherwise. */
  advanceSequence(tenant: string, agentId: string, seq: number): Promise<boolean>;
  /** Makes buffered state (sequence numbers) durable. */
  flush(): Promise<void>;
}

export function identityStorePaths(stateDir: string) {
  return {
    enrollments: join(stateDir, "identity", "enrollments.jsonl"),
    sequences: join(stateDir, "identity", "sequences.json"),
    audit: join(stateDir, "audit.jsonl"),
  };
}

const SequencesFileSchema = lazySchema(() =>
  z.object({ schema: z.literal(1), seq: z.record(z.string(), z.number()) }).strict(),
);

/** STATE/audit.jsonl: one JSON line per action, appended with O_APPEND, so several processes can add to it. */
export class FileAuditLog implements AuditLog {
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = identityStorePaths(stateDir).audit;
  }

  async appendAudit(r: AuditRecord): Promise<void> {
    appendLine(this.file, AuditRecordSchema.parse(r));
  }

  async audit(): Promise<AuditRecord[]> {
    return readLines(this.file, AuditRecordSchema, "REL_AUDIT_CORRUPT");
  }
}

export class FileIdentityStore implements IdentityStore {
  private readonly paths: ReturnType<typeof identityStorePaths>;
  private readonly auditLog: FileAuditLog;
  private readonly byKey = new Map<string, Enrollment>();
  private readonly seq: Map<string, number>;
  private seqDirty = false;

  constructor(stateDir: string) {
    this.paths = identityStorePaths(stateDir);
    this.auditLog = new FileAuditLog(stateDir);
    for (const e of readLines(this.paths.enrollments, EnrollmentSchema, "REL_IDENTITY_CORRUPT")) {
      this.byKey.set(`${e.tenant}/${e.agentId}`, e);
    }
    this.seq = new Map(Object.entries(readSequences(this.paths.sequences)));
  }

  async enrollment(tenant: string, agentId: string): Promise<Enrollment | undefined> {
    return this.byKey.get(`${tenant}/${agentId}`);
  }

  async enrollments(): Promise<Enrollment[]> {
    return [...this.byKey.values()];
  }

  async enrollmentCounts(tenant: string, sinceMs: number): Promise<{ total: number; recent: number }> {
    let total = 0;
    let recent = 0;
    for (const e of this.byKey.values()) {
      if (e.tenant !== tenant) continue;
      total++;
      if (Date.parse(e.enrolledAt) >= sinceMs) recent++;
    }
    return { total, recent };
  }

  async addEnrollment(e: Enrollment): Promise<void> {
    // Durable before the agent is told it is enrolled: a lost enrollment would orphan its key.
    appendLine(this.paths.enrollments, EnrollmentSchema.parse(e));
    this.byKey.set(`${e.tenant}/${e.agentId}`, e);
  }

  async advanceSequence(tenant: string, agentId: string, seq: number): Promise<boolean> {
    const key = `${tenant}/${agentId}`;
    if (seq <= (this.seq.get(key) ?? 0)) return false;
    this.seq.set(key, seq);
    this.seqDirty = true;
    return true;
  }

  appendAudit(r: AuditRecord): Promise<void> {
    return this.auditLog.appendAudit(r);
  }

  audit(): Promise<AuditRecord[]> {
    return this.auditLog.audit();
  }

  async flush(): Promise<void> {
    if (!this.seqDirty) return;
    mkdirSync(dirname(this.paths.sequences), { recursive: true, mode: 0o700 });
    atomicWriteJson(this.paths.sequences, { schema: 1, seq: Object.fromEntries(this.seq) }, 0o600);
    this.seqDirty = false;
  }
}

/** One JSON line, appended (O_APPEND: whole lines from several processes) and fsynced. */
function appendLine(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, "a", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** JSON lines; a torn last line (killed mid-append) is skipped, anything else is damage someone must see. */
function readLines<T>(file: string, schema: z.ZodType<T>, code: string): T[] {
  if (!existsSync(file)) return [];
  const out: T[] = [];
  const lines = readFileSync(file, "utf8").split("\n");
  const last = lines.at(-1) === "" ? lines.length - 2 : lines.length - 1;
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const r = schema.safeParse(safeJson(line));
    if (!r.success) {
      if (i === last) return;
      throw new StoreError(code, `${file}:${i + 1}: unreadable record`, { file });
    }
    out.push(r.data);
  });
  return out;
}

function readSequences(file: string): Record<string, number> {
  if (!existsSync(file)) return {};
  try {
    return SequencesFileSchema.parse(JSON.parse(readFileSync(file, "utf8"))).seq;
  } catch (e) {
    throw new StoreError(
      "REL_IDENTITY_CORRUPT",
      `${file}: unreadable sequence numbers (${(e as Error).message})`,
      {
        file,
        cause: e,
      },
    );
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
