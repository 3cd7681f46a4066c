/**
 * `GET /v1/status` is what dashboards and health probes poll, so it must
 * stay cheap however often it is asked. Building AgentStatus reads the
 * content store (several small files per content type) and serialising it
 * costs as much again, so the control plane keeps the serialised answer and
 * rebuilds it only when it may have changed: after any agent event
 * (install, rejection, rollback, handler crash, …) and at most `maxAgeMs`
 * after it was built, which bounds how stale the time-derived fields
 * (uptime, next run) can be. Without an event source there is nothing to
 * invalidate on, so every request rebuilds.
 */
import type { AgentApi, AgentStatus } from "../agent/api.ts";
import type { ControlEvents } from "./extensions.ts";

export const DEFAULT_STATUS_MAX_AGE_MS = 1000;

export class StatusCache {
  private json?: string;
  private builtAt = 0;
  private building?: Promise<string>;
  private generation = 0;
  private readonly unsubscribe?: () => void;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(
    private readonly api: Pick<AgentApi, "status">,
    opts: { events?: Pick<ControlEvents, "subscribe">; maxAgeMs?: number; now?: () => number } = {},
  ) {
    this.now = opts.now ?? performance.now.bind(performance);
    this.maxAgeMs = opts.events ? (opts.maxAgeMs ?? DEFAULT_STATUS_MAX_AGE_MS) : 0;
    this.unsubscribe = opts.events?.subscribe(() => this.invalidate());
  }

  invalidate(): void {
    this.json = undefined;
    this.generation++;
  }

  /** The cached JSON text when it is still valid (no promise: the hot path stays synchronous). */
  fresh(): string | undefined {
    if (this.json !== undefined && this.now() - this.builtAt < this.maxAgeMs) return this.json;
    return undefined;
  }

  /** AgentStatus as JSON text, from the cache when it is still valid. */
  async get(): Promise<string> {
    const fresh = this.fresh();
    if (fresh !== undefined) return fresh;
    // Concurrent misses share one build: a burst of pollers costs one status().
    this.building ??= this.build().finally(() => {
      this.building = undefined;
    });
    return this.building;
  }

  private async build(): Promise<string> {
    const generation = this.generation;
    const startedAt = this.now();
    // status() is synchronous today; awaiting keeps the cache right if it becomes asynchronous.
    const status: AgentStatus = await this.api.status();
    const json = JSON.stringify(status);
    // An event that arrived while building may have changed what status() would say now.
    if (generation === this.generation && this.maxAgeMs > 0) {
      this.json = json;
      this.builtAt = startedAt;
    }
    return json;
  }

  close(): void {
    this.unsubscribe?.();
    this.invalidate();
  }
}
