/**
 * A module-level zod schema built on first use instead of when its module
 * is evaluated.
 *
 * Why: building schemas is a large part of the start-up of a process that
 * runs briefly. Every `z.object`, `.optional()`, `.int()` constructs an
 * instance, and at start-up JavaScriptCore runs that code in its
 * interpreter (core/jsc-options.ts keeps the JIT for code that runs often),
 * at ~30 µs per instance in the compiled agent. A host process built 387
 * instances before it read its first message, most of them for messages it
 * never receives; it now starts on 69 (the channel's, parsed at once).
 * `agent scan`'s CLI and the supervisor gain the same for every schema
 * they never parse.
 *
 * `lazySchema(() => z.object({...}))` has the type of the schema it wraps,
 * so `z.infer<typeof X>`, `X.safeParse(v)`, `X.optional()` and nesting
 * `X` in another schema work unchanged: a Proxy builds the schema when one
 * of its properties is first read and forwards every read to it after
 * that. Nesting a lazy schema inside another does not build it; parsing
 * does. Only property reads, `in` and the prototype are forwarded: a lazy
 * schema is meant to be used as a schema, not enumerated or redefined.
 *
 * An idle process lets go of what it built (`releaseBuiltSchemas`): the
 * schema is then built again on its next use, so its identity may change
 * between two idle spells (`realSchema` callers use it within one call).
 */
export function lazySchema<T extends object>(build: () => T): T {
  let schema: T | undefined;
  let used = false;
  const real = (): T => {
    used = true;
    schema ??= build();
    return schema;
  };
  cells.push(() => {
    // Second chance: used since the last call, kept (a heartbeat's schema stays built).
    if (!schema || used) {
      used = false;
      return false;
    }
    schema = undefined;
    return true;
  });
  return new Proxy({} as T, {
    get: (_target, key) => (key === REAL ? real() : Reflect.get(real(), key)),
    has: (_target, key) => Reflect.has(real(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
  });
}

const REAL = Symbol("lazySchema.real");

/** One per lazySchema (they are module-level constants, so the list is fixed); each may let go of what it built. */
const cells: (() => boolean)[] = [];

/**
 * Lets go of the built schemas that were not used since the last call, for a process that has
 * gone idle (collectIdle, core/host/idle-gc.ts): the collection that follows frees those nothing
 * else holds, and the next use builds them again. A process kept what it built for its whole life,
 * and most of it serves a moment: the supervisor held 1,605 schema instances, 570 of them for
 * parsing its config at start. A schema used between two idle collections (a heartbeat's, a
 * status request's) stays, so the CPU to build it again is paid only for what is rarely used.
 *
 * Not a WeakRef: JavaScriptCore keeps the target of a new WeakRef alive until the current job
 * ends, so the collection right after would free nothing. Code that still holds a built schema
 * keeps it; the next use through the lazy schema builds another. Returns how many were let go.
 */
export function releaseBuiltSchemas(): number {
  let n = 0;
  for (const release of cells) if (release()) n++;
  return n;
}

/**
 * The schema itself behind a lazy schema (built now if it was not), or `s` when it is not one. For
 * code that keys on the schema object's identity: the OpenAPI generator looks a schema's name and
 * metadata up in a registry by identity, and the Proxy is another object.
 */
export function realSchema<T extends object>(s: T): T {
  return ((s as Record<symbol, unknown>)[REAL] as T | undefined) ?? s;
}
