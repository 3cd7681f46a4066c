/**
 * The agent's event bus: updates, rejections, rollbacks, handler failures.
 * Subscribers (control-plane SSE, alert sinks, tests) see every event; a
 * bounded ring keeps the recent ones for status and for SSE clients that
 * reconnect with Last-Event-ID. A throwing subscriber is isolated so it
 * cannot break the update path.
 *
 * Every event gets an integer id, strictly increasing. Numbering starts at
 * the bus's creation time in microseconds, so ids also keep increasing
 * across agent restarts and an id remembered from a previous process is
 * recognisably older than anything this process still holds.
 */
export interface AgentEvent {
  type: string;
  at: string;
  [k: string]: unknown;
}

export interface SequencedEvent {
  id: number;
  event: AgentEvent;
}

export class EventBus {
  private readonly subscribers = new Set<(e: AgentEvent, id: number) => void>();
  private readonly ring: SequencedEvent[] = [];
  private nextId: number;

  constructor(
    private readonly capacity = 200,
    opts: { firstId?: number } = {},
  ) {
    this.nextId = opts.firstId ?? Date.now() * 1000;
  }

  emit(type: string, fields: Record<string, unknown> = {}): AgentEvent {
    const event: AgentEvent = { type, at: new Date().toISOString(), ...fields };
    const id = this.nextId++;
    this.ring.push({ id, event });
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const fn of this.subscribers) {
      try {
        fn(event, id);
      } catch {
        // A broken subscriber must not take the agent down with it.
      }
    }
    return event;
  }

  subscribe(fn: (e: AgentEvent, id: number) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** The id the last emitted event got (one less than the first id when nothing was emitted). */
  get lastId(): number {
    return this.nextId - 1;
  }

  recent(filter?: (e: AgentEvent) => boolean): AgentEvent[] {
    const events = this.ring.map((s) => s.event);
    return filter ? events.filter(filter) : events;
  }

  /**
   * The retained events after `afterId` (all retained ones when undefined).
   * `complete` is false when events after `afterId` have already left the
   * ring, or when `afterId` is not an id this bus could have issued (from
   * another process, or made up) — the caller then knows it missed some.
   */
  since(afterId?: number): { events: SequencedEvent[]; complete: boolean } {
    if (afterId === undefined) return { events: [...this.ring], complete: true };
    const oldest = this.ring[0]?.id ?? this.nextId;
    const complete = afterId >= oldest - 1 && afterId <= this.lastId;
    if (!complete) return { events: [...this.ring], complete };
    return { events: this.ring.filter((s) => s.id > afterId), complete };
  }
}
