import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { collectIdle } from "../host/idle-gc.ts";
import { lazySchema, realSchema, releaseBuiltSchemas } from "./lazy-schema.ts";

describe("lazySchema", () => {
  test("builds nothing until the schema is used, then builds once", () => {
    let builds = 0;
    const Point = lazySchema(() => {
      builds++;
      return z.object({ x: z.number().int(), y: z.number().int() }).strict();
    });
    const Line = lazySchema(() => z.object({ from: Point, to: Point }));
    // Declared, and nested in another lazy schema: nothing built yet.
    expect(builds).toBe(0);
    expect(Line.parse({ from: { x: 1, y: 2 }, to: { x: 3, y: 4 } })).toEqual({
      from: { x: 1, y: 2 },
      to: { x: 3, y: 4 },
    });
    expect(builds).toBe(1);
    expect(Point.safeParse({ x: 1 }).success).toBe(false);
    expect(Point.safeParse({ x: 1, y: 2, z: 3 }).success).toBe(false);
    expect(builds).toBe(1);
  });

  test("behaves as the schema it wraps: methods, instanceof, `in`, inferred type", () => {
    const Name = lazySchema(() => z.string().min(1).max(8));
    const maybe = Name.optional();
    expect(maybe.parse(undefined)).toBeUndefined();
    expect(() => Name.parse("")).toThrow(z.ZodError);
    expect(Name instanceof z.ZodString).toBe(true);
    expect(Name instanceof z.ZodNumber).toBe(false);
    expect("_zod" in Name).toBe(true);
    const Obj = lazySchema(() => z.object({ name: Name, n: z.number().default(3) }));
    expect(Object.keys(Obj.shape)).toEqual(["name", "n"]);
    const v: z.infer<typeof Obj> = Obj.parse({ name: "a" });
    expect(v).toEqual({ name: "a", n: 3 });
    expect(z.prettifyError(Obj.safeParse({ name: 1 }).error!)).toContain("name");
  });

  test("realSchema: the built schema itself (one instance, for identity-keyed registries); others as they are", () => {
    let builds = 0;
    const Lazy = lazySchema(() => {
      builds++;
      return z.string().meta({ id: "Named" });
    });
    const real = realSchema(Lazy);
    expect(builds).toBe(1);
    expect(real).not.toBe(Lazy);
    expect(realSchema(Lazy)).toBe(real);
    expect(z.globalRegistry.get(real)?.id).toBe("Named");
    // The Proxy is another object: an identity lookup misses it, which is why realSchema exists.
    expect(z.globalRegistry.get(Lazy)).toBeUndefined();
    const eager = z.number();
    expect(realSchema(eager)).toBe(eager);
  });

  test("releaseBuiltSchemas lets go of what was not used since its last call; the next use builds it again and parses the same", () => {
    let builds = 0;
    const Point = lazySchema(() => {
      builds++;
      return z.object({ x: z.number().int(), y: z.number().int() }).strict();
    });
    const Line = lazySchema(() => z.object({ from: Point, to: Point }));
    const unused = lazySchema(() => z.string());
    const line = { from: { x: 1, y: 2 }, to: { x: 3, y: 4 } };
    expect(Line.parse(line)).toEqual(line);
    const before = realSchema(Point);
    expect(builds).toBe(1);
    // Used since the last call: a second chance, nothing of them let go.
    releaseBuiltSchemas();
    expect(Line.parse(line)).toEqual(line);
    expect(builds).toBe(1);
    releaseBuiltSchemas();
    expect(builds).toBe(1);
    // Line and Point were built and not used since, `unused` was never built: two let go (among any other module's).
    expect(releaseBuiltSchemas()).toBeGreaterThanOrEqual(2);
    expect(releaseBuiltSchemas()).toBe(0);
    expect(builds).toBe(1);
    expect(Line.parse(line)).toEqual(line);
    expect(Point.safeParse({ x: 1, y: 2, z: 3 }).success).toBe(false);
    expect(builds).toBe(2);
    // A new instance; whoever held the old one still has a working schema.
    expect(realSchema(Point)).not.toBe(before);
    expect(before.parse({ x: 5, y: 6 })).toEqual({ x: 5, y: 6 });
    expect(unused.parse("s")).toBe("s");
  });

  test("idle collections let go of them; collections of busy work do not", () => {
    let builds = 0;
    const S = lazySchema(() => {
      builds++;
      return z.number().int();
    });
    S.parse(1);
    collectIdle(false);
    collectIdle(false);
    S.parse(2);
    expect(builds).toBe(1);
    // The first idle collection after a use is its second chance; the next one lets it go.
    collectIdle(true);
    collectIdle(true);
    S.parse(3);
    expect(builds).toBe(2);
  });

  test("an error in the builder surfaces at first use, every time", () => {
    const Broken = lazySchema((): z.ZodString => {
      throw new Error("boom");
    });
    expect(() => Broken.parse("x")).toThrow("boom");
    expect(() => Broken.parse("x")).toThrow("boom");
  });
});

/**
 * The rule, checked on the sources: a zod schema at module level is built lazily. Exceptions are
 * named with their reason: schemas every process that loads the module parses at once anyway, and
 * the control plane's route schemas, documented (core/control/openapi-document.ts) when the route is
 * defined. `named(...)` and `doc(...)` of a schema count as schemas; a registry does not.
 */
const EAGER_ALLOWED: Record<string, string> = {
  "core/host/channel.ts": "parsed on every message by every process that loads it",
  "core/control/schemas.ts":
    "path parameters: their OpenAPI metadata is keyed by the instance at route definition",
  "handlers/DatasetA/scan/routes.ts": "OpenAPI metadata is keyed by the instance",
  "handlers/ScheduledQueryPack/routes.ts": "OpenAPI metadata is keyed by the instance",
};
const ROOT = join(import.meta.dir, "../..");
const EAGER = /^(?:export )?const (\w+)(?:: [^=]+)? = (?:z\b(?!\.registry\b)|named\(|doc\()/gm;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((p) => p.endsWith(".ts") && !p.endsWith(".test.ts") && !/(^|\/)(testdata|fakes)\//.test(p))
    .map((p) => join(dir, p));
}

describe("module-level schemas", () => {
  test("are lazySchema(...) outside the named exceptions", () => {
    const offenders: string[] = [];
    for (const file of ["core", "handlers", "plugins", "fleet"].flatMap(sources)) {
      if (Object.hasOwn(EAGER_ALLOWED, file)) continue;
      const text = readFileSync(join(ROOT, file), "utf8");
      for (const m of text.matchAll(EAGER)) offenders.push(`${file}: ${m[1]}`);
    }
    expect(offenders).toEqual([]);
  });

  test("every named exception still has an eager schema (the list does not go stale)", () => {
    for (const file of Object.keys(EAGER_ALLOWED))
      expect([...readFileSync(join(ROOT, file), "utf8").matchAll(EAGER)].length).toBeGreaterThan(0);
  });

  test("the check sees an eager schema and ignores a lazy one", () => {
    const eager =
      'export const A = z.object({});\nconst B: z.ZodString = z.string();\nconst D = named("D", z.string());\n';
    const lazy =
      "export const C = lazySchema(() => z.object({}));\nconst R = z.registry<{ id?: string }>();\n";
    expect([...eager.matchAll(EAGER)].map((m) => m[1])).toEqual(["A", "B", "D"]);
    expect([...lazy.matchAll(EAGER)]).toEqual([]);
  });
});
