/**
 * The agent's event bus: updates, rejections, rollbacks, handler failures.
 * Subscribers (control-plane SSE, alert sinks, tests) see every event; a
 * bounded ring keeps the recent ones for status. A throwing subscriber is
 * isolated so it cannot break the update path.
 */
export interface AgentEvent {
  type: string;
  at: string;
  [k: string]: unknown;
}

export class EventBus {
  private readonly subscribers = new Set<(e: AgentEvent) => void>();
  private readonly ring: AgentEvent[] = [];

  constructor(private readonly capacity = 200) {}

  emit(type: string, fields: Record<string, unknown> = {}): AgentEvent {
    const event: AgentEvent = { type, at: new Date().toISOString(), ...fields };
    this.ring.push(event);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const fn of this.subscribers) {
      try {
        fn(event);
      } catch {
        // A broken subscriber must not take the agent down with it.
      }
    }
    return event;
  }

  subscribe(fn: (e: AgentEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  recent(filter?: (e: AgentEvent) => boolean): AgentEvent[] {
    return filter ? this.ring.filter(filter) : [...this.ring];
  }
}
