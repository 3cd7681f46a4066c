/**
 * An automatic rollback is not "healthy again": the host now runs older
 * content than the vendor intended. Each one leaves a notice that keeps
 * health AMBER (through the health board, `ack: true`) with the versions and
 * the reason until either a newer good version of that type installs or an
 * administrator acknowledges it (`agent content ack TYPE`).
 *
 * Notices live in the update memory (update-state.json), not only on the
 * board, so they survive a restart and `agent content ack` works offline.
 */
import type { HealthBoard } from "../health/reasons.ts";
import type { RollbackNotice, UpdateMemory } from "../update/memory.ts";

export const ROLLBACK_CODE = "CONTENT_ROLLED_BACK";

export interface AckResult {
  type: string;
  /** The notice that was acknowledged, or null when there was none (nothing changed). */
  acknowledged: RollbackNotice | null;
}

export class RollbackNotices {
  constructor(
    private readonly health: HealthBoard,
    private readonly memory: () => Pick<UpdateMemory, "data" | "save"> | undefined,
    private readonly now: () => Date,
  ) {}

  /** Raises the board's reasons for notices remembered from earlier runs. */
  restore(): void {
    for (const [type, n] of Object.entries(this.memory()?.data.rollbackNotices ?? {})) this.raise(type, n);
  }

  /** An automatic rollback happened: AMBER until acknowledged or superseded. */
  record(type: string, from: number | null, to: number, reason: string): void {
    const notice: RollbackNotice = { from, to, reason, at: this.now().toISOString() };
    const m = this.memory();
    if (m) {
      m.data.rollbackNotices = { ...m.data.rollbackNotices, [type]: notice };
      try {
        m.save();
      } catch {
        // A full disk must not stop a rollback: the notice holds in memory, and the failed save
        // is reported by the next save the update cycle makes.
      }
    }
    this.raise(type, notice);
  }

  /** A newer version of `type` installed and loaded: the rollback is history. */
  superseded(type: string, version: number): void {
    const n = this.memory()?.data.rollbackNotices?.[type];
    if (!n || version <= n.to) return;
    try {
      this.forget(type, "clear");
    } catch {
      // Not saved: the notice stays (on the board too) and the cycle's own save reports the disk.
    }
  }

  /** The administrator has seen it. Returns what was acknowledged (null: nothing to acknowledge). */
  acknowledge(type: string): AckResult {
    const n = this.memory()?.data.rollbackNotices?.[type] ?? null;
    if (n) this.forget(type, "ack");
    return { type, acknowledged: n };
  }

  private raise(type: string, n: RollbackNotice): void {
    this.health.raise(
      source(type),
      "amber",
      ROLLBACK_CODE,
      `${type} was rolled back automatically from v${n.from ?? "?"} to v${n.to} at ${n.at}: ${n.reason}; acknowledge with \`agent content ack ${type}\``,
      { ack: true },
    );
  }

  private forget(type: string, by: "clear" | "ack"): void {
    const m = this.memory();
    const notices = m?.data.rollbackNotices;
    if (m && notices?.[type]) {
      const { [type]: _gone, ...rest } = notices;
      m.data.rollbackNotices = rest;
      try {
        m.save();
      } catch (e) {
        // Not saved means not acknowledged: put it back and let the caller report the failure.
        m.data.rollbackNotices = notices;
        throw e;
      }
    }
    if (by === "ack") this.health.acknowledge(source(type), ROLLBACK_CODE);
    else this.health.clear(source(type), ROLLBACK_CODE);
  }
}

function source(type: string): string {
  return `content:${type}`;
}
