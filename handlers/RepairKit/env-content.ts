/**
 * Installed content as rules reach it (`content.*`): each type's version,
 * last-known-good and on-disk integrity, and a refetch that goes back to a
 * verifying last-known-good or moves the damaged pointer aside.
 */
import { describeError, HandlerError } from "../../core/errors.ts";
import { ContentStore } from "../../core/store/store.ts";
import type { EnvContext } from "./env-files.ts";

export class EnvContent {
  constructor(private readonly ctx: EnvContext) {}

  content(): Record<string, unknown>[] {
    const store = new ContentStore(this.ctx.facts.stateDir);
    return store.types().map((type) => {
      try {
        const rec = store.installed(type);
        const lkg = safe(() => store.lkg(type));
        if (!rec) return { type, version: false, ok: true, lkgVersion: lkg?.version ?? false, problems: [] };
        const report = store.verifyInstalled(type, rec);
        return {
          type,
          version: rec.version,
          lkgVersion: lkg?.version ?? false,
          ok: report?.ok ?? true,
          problems: (report?.problems ?? []).slice(0, 10).map((p) => `${p.path}: ${p.reason}`),
        };
      } catch (e) {
        return { type, version: false, ok: false, lkgVersion: false, problems: [describeError(e).message] };
      }
    });
  }

  /**
   * Makes the next update cycle fetch `type` again: back to last-known-good
   * when it verifies (without marking the abandoned version bad: it was
   * damaged on disk, not defective), else the current pointer is
   * quarantined. The fix then requests an update.
   */
  contentRefetch(type: unknown): string {
    if (typeof type !== "string" || !/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(type)) {
      throw new HandlerError("HND_REPAIR_ARGS", "content.refetch: bad content type");
    }
    const store = new ContentStore(this.ctx.facts.stateDir);
    const lkg = safe(() => store.lkg(type));
    if (lkg && store.verifyInstalled(type, lkg)?.ok) {
      store.rollback(type);
      return `current set back to v${lkg.version}`;
    }
    const moved = this.ctx.files.quarantine(`content/${type}/current.json`);
    return `current pointer moved to ${moved}`;
  }
}

function safe<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}
