/**
 * What the update client remembers between runs: the highest index serial
 * per group (rollback protection survives restarts), the cached index for
 * conditional GETs, and loop bookkeeping for status.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { statePaths } from "../config.ts";
import { StoreError } from "../errors.ts";
import { atomicWriteFile, atomicWriteJson, removeStaleTempFiles } from "../fsutil.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

const RollbackNoticeSchema = lazySchema(() =>
  z.object({
    from: z.nullable(z.int()),
    to: z.int(),
    reason: z.string(),
    at: z.string(),
  }),
);
export type RollbackNotice = z.infer<typeof RollbackNoticeSchema>;

const MemorySchema = lazySchema(() =>
  z.object({
    schema: z.literal(1),
    groups: z.record(
      z.string(),
      z.object({ lastSerial: z.int().check(z.nonnegative()), lastIndexSha384: z.string() }),
    ),
    lastAttempt: z.nullable(z.string()),
    lastSuccess: z.nullable(z.string()),
    consecutiveFailures: z.int().check(z.nonnegative()),
    /** Kept on disk so `agent status` shows rejections across restarts and offline. */
    recentRejections: z._default(
      z.array(
        z.object({
          at: z.string(),
          type: z.optional(z.string()),
          file: z.string(),
          code: z.string(),
          reason: z.string(),
        }),
      ),
      [],
    ),
    /**
     * R11's memory: per content type, the newest signing time of any package ever installed. Kept
     * here rather than derived from the pointers, which a rollback moves backwards.
     */
    signingHighWater: z.optional(z.record(z.string(), z.iso.datetime())),
    /** Automatic rollbacks not yet acknowledged, per type (core/agent/rollback-notices.ts). */
    rollbackNotices: z.optional(z.record(z.string(), RollbackNoticeSchema)),
  }),
);
export type UpdateMemoryData = z.infer<typeof MemorySchema>;

const CacheMetaSchema = lazySchema(() =>
  z.object({ etag: z.optional(z.string()), sigEtag: z.optional(z.string()) }),
);

export class UpdateMemory {
  private readonly file: string;
  private readonly cacheRoot: string;
  data: UpdateMemoryData;

  /** Read-only (an offline `agent status`): nothing is cleaned up or saved; changes stay in memory. */
  private readonly readOnly: boolean;

  constructor(stateDir: string, opts: { readOnly?: boolean } = {}) {
    const p = statePaths(stateDir);
    this.file = p.updateState;
    this.cacheRoot = p.indexCache;
    this.readOnly = opts.readOnly ?? false;
    if (!this.readOnly) {
      // Leftovers of a write interrupted by a kill: harmless, but they would pile up.
      removeStaleTempFiles(stateDir);
      for (const group of safeReaddir(this.cacheRoot)) removeStaleTempFiles(join(this.cacheRoot, group));
    }
    this.data = this.read();
  }

  private read(): UpdateMemoryData {
    const empty: UpdateMemoryData = {
      schema: 1,
      groups: {},
      lastAttempt: null,
      lastSuccess: null,
      consecutiveFailures: 0,
      recentRejections: [],
    };
    if (!existsSync(this.file)) return empty;
    try {
      return MemorySchema.parse(JSON.parse(readFileSync(this.file, "utf8")));
    } catch (e) {
      // Losing the serial memory would re-open the door to index rollback, so refuse to guess.
      throw new StoreError(
        "STORE_CORRUPT_STATE",
        `${this.file}: unreadable update state (${(e as Error).message})`,
        {
          file: this.file,
          cause: e,
        },
      );
    }
  }

  save(): void {
    if (this.readOnly) return;
    atomicWriteJson(this.file, this.data, 0o600);
  }

  cachedIndex(group: string): { index: Uint8Array; sig: Uint8Array; etag?: string } | undefined {
    const dir = join(this.cacheRoot, group);
    try {
      const meta = CacheMetaSchema.parse(JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")));
      return {
        index: new Uint8Array(readFileSync(join(dir, "index.json"))),
        sig: new Uint8Array(readFileSync(join(dir, "index.p7s"))),
        etag: meta.etag,
      };
    } catch {
      return undefined;
    }
  }

  /** The cache only ever holds an index that verified; meta (with the ETag) is written last. */
  cacheIndex(group: string, index: Uint8Array, sig: Uint8Array, etag: string | undefined): void {
    if (this.readOnly) return;
    const dir = join(this.cacheRoot, group);
    mkdirSync(dir, { recursive: true });
    atomicWriteJson(join(dir, "meta.json"), {});
    atomicWriteFile(join(dir, "index.json"), index);
    atomicWriteFile(join(dir, "index.p7s"), sig);
    atomicWriteJson(join(dir, "meta.json"), { etag });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
