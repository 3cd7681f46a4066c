/**
 * A module-level zod schema built on first use instead of when its module
 * is evaluated.
 *
 * Why: building a schema is the dominant start-up cost of a process that
 * runs briefly. Every `z.object`, `.optional()`, `.int()` constructs an
 * instance, and at start-up JavaScriptCore runs that code in its
 * interpreter (jsc-options.ts keeps the JIT for code that runs often). A
 * host process evaluated ~440 schemas before it read its first message,
 * most of them for messages it never receives; `agent scan`'s CLI, its
 * scanner host and the supervisor pay the same per schema they never use.
 *
 * `lazySchema(() => z.object({...}))` has the type of the schema it wraps,
 * so `z.infer<typeof X>`, `X.safeParse(v)`, `X.optional()` and nesting
 * `X` in another schema work unchanged: a Proxy builds the schema when one
 * of its properties is first read and forwards every read to it after
 * that. Nesting a lazy schema inside another does not build it; parsing
 * does. Only property reads, `in` and the prototype are forwarded: a lazy
 * schema is meant to be used as a schema, not enumerated or redefined.
 */
export function lazySchema<T extends object>(build: () => T): T {
  let schema: T | undefined;
  const real = (): T => {
    schema ??= build();
    return schema;
  };
  return new Proxy({} as T, {
    get: (_target, key) => Reflect.get(real(), key),
    has: (_target, key) => Reflect.has(real(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
  });
}
