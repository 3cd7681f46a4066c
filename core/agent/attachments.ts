/**
 * Per-agent attachments. A background feature that `agent run` starts beside
 * an agent (through the session's service hook) and the control-plane routes
 * that show it meet through the agent instance they both were given — never
 * through a module-level "current" value, which would leak from one agent to
 * another in the same process (tests, embedders running several agents).
 * The map is weak: an agent that is gone takes its attachments with it.
 */
export interface Attachment<T> {
  /** What is attached to `owner` (the agent), if anything. */
  get(owner: object): T | undefined;
  set(owner: object, value: T): void;
  /** Detaches `value` from `owner`, unless something else was attached since. */
  delete(owner: object, value: T): void;
}

export function attachment<T>(): Attachment<T> {
  const byOwner = new WeakMap<object, T>();
  return {
    get: (owner) => byOwner.get(owner),
    set: (owner, value) => {
      byOwner.set(owner, value);
    },
    delete: (owner, value) => {
      if (byOwner.get(owner) === value) byOwner.delete(owner);
    },
  };
}
