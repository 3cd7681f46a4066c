/**
 * How ProductRulesFeed hands its library to Behavior: both handlers belong
 * to the `behavior` host group, and a group runs in one host process
 * (handler contract), so this process-local exchange is shared by exactly
 * the handlers of one group. Entries are keyed by the group's work
 * directory (`caps.workDir`), which the host derives from the state dir and
 * the group name: that keeps two agents in one test process apart.
 *
 * Only immutable data crosses: library module sources and limits, never
 * live Lua objects. Behavior loads them into its own state before its rules
 * ("loaded first"), and rebuilds that state when the library changes.
 *
 * The two-phase switch shows up as a stack: a new ProductRulesFeed version
 * publishes in load() (beside the live one); unload() withdraws whichever
 * version is released. If the new version is discarded, the old one is
 * current again; if it is committed, the old one is withdrawn and nothing
 * changes for subscribers.
 */
import type { LibraryModules } from "./format.ts";

type Listener = (library: LibraryModules | undefined) => void;

interface Slot {
  stack: LibraryModules[];
  listeners: Set<Listener>;
}

class LibraryExchange {
  private readonly slots = new Map<string, Slot>();

  private slot(key: string): Slot {
    let s = this.slots.get(key);
    if (!s) {
      s = { stack: [], listeners: new Set() };
      this.slots.set(key, s);
    }
    return s;
  }

  current(key: string): LibraryModules | undefined {
    const stack = this.slots.get(key)?.stack;
    return stack?.[stack.length - 1];
  }

  /** Publishes a library; the returned function withdraws exactly this entry. */
  publish(key: string, library: LibraryModules): () => void {
    const s = this.slot(key);
    const frozen = Object.freeze({
      ...library,
      modules: Object.freeze([...library.modules]),
    }) as LibraryModules;
    s.stack.push(frozen);
    this.notify(key, s);
    return () => {
      const before = this.current(key);
      const i = s.stack.indexOf(frozen);
      if (i >= 0) s.stack.splice(i, 1);
      if (this.current(key) !== before) this.notify(key, s);
      this.gc(key, s);
    };
  }

  /** Called with the new current library whenever it changes. */
  subscribe(key: string, fn: Listener): () => void {
    const s = this.slot(key);
    s.listeners.add(fn);
    return () => {
      s.listeners.delete(fn);
      this.gc(key, s);
    };
  }

  private notify(key: string, s: Slot): void {
    const lib = this.current(key);
    for (const fn of [...s.listeners]) {
      try {
        fn(lib);
      } catch {
        // A subscriber's failure is its own; the publisher must not fail because of it.
      }
    }
  }

  private gc(key: string, s: Slot): void {
    if (s.stack.length === 0 && s.listeners.size === 0) this.slots.delete(key);
  }
}

export const productLibraries = new LibraryExchange();
