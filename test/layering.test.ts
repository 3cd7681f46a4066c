/**
 * The layering of the source tree, enforced. Every relative import of every
 * .ts file is read and checked against one table (LAYERS and
 * TYPE_DEPENDENCIES in ./layering-rules.ts, kept apart only so
 * scripts/layering-readme.ts can draw it into README.md "Layering"; the last
 * test here fails when the drawing is not the table's):
 *
 *   bin · scripts · bench · test        entry points and suites: anything
 *     → handlers/*.ts                   the registry of built-in handlers
 *       → handlers/<Type>/              one content type, everything it owns
 *         → handlers/_shared/, handlers/groups.ts   code several types share
 *           → plugins/<adapter>/        swappable adapters, one interface each
 *             → core/                   the agent kernel: imports nothing above it
 *   fleet/ (vendor-side service) → core/
 *
 * L1  a file imports only its own folder and the layers its layer lists.
 * L2  a content type does not import another type, except the dependencies
 *     declared in TYPE_DEPENDENCIES (a scan asks reputation).
 * L3  no cycles between folders through value imports (a type-only import is
 *     erased at build time and cannot create a load-order knot; it still
 *     counts for L1).
 * L4  test code (`*.test.ts`, testutil/testkit, testdata/) may also import the
 *     shared suites' fixtures (test/, build.ts), and a type's tests may install
 *     other types beside it; it never lets core/ or plugins/ reach upwards.
 *
 * The checks are pure functions of (path → source), so the last tests feed
 * them fabricated violations to prove they fail.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname, join, normalize, resolve } from "node:path";
import { Glob } from "bun";
import { README_PATH, withDrawing } from "../scripts/layering-readme.ts";
import { LAYERS, type Layer, TYPE_DEPENDENCIES } from "./layering-rules.ts";

const ROOT = resolve(import.meta.dir, "..");

/** L4: what test code may import in addition to its layer's list. */
const TEST_UNITS = /^(test|\.)$/;

export interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

export interface Violation {
  rule: "L1" | "L2" | "L3";
  message: string;
}

/**
 * The folder a file belongs to: `core/agent`, `handlers/Behavior`,
 * `handlers/_shared/lua`, `plugins/query`, `fleet/contentctl`, `handlers` (the
 * registry files), `handlers/groups`, or the top-level folder.
 */
export function unitOf(path: string): string {
  const parts = path.split("/");
  if (parts.length === 1) return ".";
  if (parts[0] === "handlers") {
    if (parts.length === 2) return parts[1] === "groups.ts" ? "handlers/groups" : "handlers";
    if (parts[1] === "_shared") return parts.slice(0, 3).join("/");
  }
  if (["bin", "scripts", "bench", "test"].includes(parts[0]!)) return parts[0]!;
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

export function layerOf(unit: string): Layer | undefined {
  return LAYERS.find((l) => l.units.test(unit))?.layer;
}

export function isTestCode(path: string): boolean {
  return /\.test\.ts$|(^|\/)(testutil|testkit)\.ts$|(^|\/)testdata\//.test(path);
}

// import … from "x" | export … from "x" | import "x" | import("x"); the clause excludes ; = ( so a
// match cannot run from an unrelated statement to a later `from`.
const IMPORT_RE =
  /^\s*(?:import|export)\s+(type\s+)?([\w\s{},*$]*?)\s*from\s*["']([^"']+)["']|^\s*import\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;

/** The relative imports of one source file, resolved to repository paths. */
export function importsOf(path: string, source: string): Import[] {
  const out: Import[] = [];
  for (const m of source.matchAll(IMPORT_RE)) {
    const spec = m[3] ?? m[4] ?? m[5]!;
    if (!spec.startsWith(".")) continue;
    const clause = m[2]?.trim() ?? "";
    const names = /^\{[^}]*\}$/.test(clause)
      ? clause
          .slice(1, -1)
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
    const typeOnly = m[1] !== undefined || (names.length > 0 && names.every((n) => n.startsWith("type ")));
    out.push({ from: path, to: normalize(join(dirname(path), spec)), typeOnly });
  }
  return out;
}

/** L1, L2: one import against the table. */
export function directionViolation(imp: Import): Violation | undefined {
  const a = unitOf(imp.from);
  const b = unitOf(imp.to);
  if (a === b) return undefined;
  const la = layerOf(a);
  const lb = layerOf(b);
  if (!la) return { rule: "L1", message: `${imp.from}: folder ${a} is in no layer of LAYERS` };
  if (!lb) return { rule: "L1", message: `${imp.from} → ${imp.to}: folder ${b} is in no layer of LAYERS` };
  const testCode = isTestCode(imp.from);
  if (testCode && TEST_UNITS.test(b)) return undefined;
  if (la === "types" && lb === "types") {
    if (TYPE_DEPENDENCIES[a]?.includes(b)) return undefined;
    if (testCode) return undefined; // L4: a type's tests may install other types beside it
    return { rule: "L2", message: `${imp.from} → ${imp.to}: content type ${a} imports type ${b}` };
  }
  if (testCode && la === "types" && lb === "handlers") return undefined;
  const allowed = LAYERS.find((l) => l.layer === la)!.mayImport;
  if (la === "plugins" && lb === "plugins") {
    return { rule: "L1", message: `${imp.from} → ${imp.to}: adapter ${a} imports adapter ${b}` };
  }
  if (!allowed.includes(lb)) {
    return { rule: "L1", message: `${imp.from} → ${imp.to}: ${la} (${a}) may not import ${lb} (${b})` };
  }
  return undefined;
}

/** L3: cycles between folders through value imports of non-test code, each reported once with its path. */
export function folderCycles(imports: Import[]): Violation[] {
  const graph = new Map<string, Map<string, Import>>();
  for (const imp of imports) {
    if (imp.typeOnly || isTestCode(imp.from)) continue;
    const a = unitOf(imp.from);
    const b = unitOf(imp.to);
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Map());
    if (!graph.get(a)!.has(b)) graph.get(a)!.set(b, imp);
  }
  const out: Violation[] = [];
  const reported = new Set<string>();
  for (const [a, edges] of graph) {
    for (const [b, first] of edges) {
      const back = pathBetween(graph, b, a);
      if (!back) continue;
      const key = [...new Set(back)].sort().join(" ");
      if (reported.has(key)) continue;
      reported.add(key);
      const steps = [first, ...back.slice(1).map((u, i) => graph.get(back[i]!)!.get(u)!)];
      out.push({
        rule: "L3",
        message: `cycle ${[a, ...back].join(" → ")}: ${steps.map((s) => `${s.from} → ${s.to}`).join("; ")}`,
      });
    }
  }
  return out;
}

/** Breadth-first path of folders from `from` to `to` (inclusive), or undefined. */
function pathBetween(
  graph: Map<string, Map<string, Import>>,
  from: string,
  to: string,
): string[] | undefined {
  const prev = new Map<string, string>([[from, from]]);
  const queue = [from];
  while (queue.length > 0) {
    const u = queue.shift()!;
    if (u === to) {
      const path = [to];
      while (path[0] !== from) path.unshift(prev.get(path[0]!)!);
      return path;
    }
    for (const v of graph.get(u)?.keys() ?? []) {
      if (!prev.has(v)) {
        prev.set(v, u);
        queue.push(v);
      }
    }
  }
  return undefined;
}

export function checkLayering(sources: Map<string, string>): Violation[] {
  const imports = [...sources].flatMap(([path, src]) => importsOf(path, src));
  const direction = imports.map(directionViolation).filter((v): v is Violation => v !== undefined);
  return [...direction, ...folderCycles(imports)];
}

function repositorySources(): Map<string, string> {
  const out = new Map<string, string>();
  for (const path of new Glob("**/*.ts").scanSync({ cwd: ROOT, followSymlinks: false })) {
    if (/^(node_modules|dist|demo|\.tmp|\.git)\//.test(path) || path.includes("/node_modules/")) continue;
    // This file's fabricated violations are string fixtures, not imports.
    if (path === "test/layering.test.ts") continue;
    out.set(path, readFileSync(join(ROOT, path), "utf8"));
  }
  return out;
}

describe("layering of this repository", () => {
  test("every import follows LAYERS and there are no cycles between folders", () => {
    const sources = repositorySources();
    expect(sources.size).toBeGreaterThan(300);
    // The graph is real: the kernel is imported from every layer above it.
    const imports = [...sources].flatMap(([p, s]) => importsOf(p, s));
    expect(
      imports.filter((i) => i.from.startsWith("handlers/") && i.to.startsWith("core/")).length,
    ).toBeGreaterThan(50);
    expect(checkLayering(sources).map((v) => `${v.rule} ${v.message}`)).toEqual([]);
  });

  test("README.md's drawing is the table's, every declared type → type import included (bun scripts/layering-readme.ts)", () => {
    const readme = readFileSync(README_PATH, "utf8");
    expect(withDrawing(readme)).toBe(readme);
    for (const [from, tos] of Object.entries(TYPE_DEPENDENCIES))
      for (const to of tos) expect(readme).toContain(`${from.slice(9)} → ${to.slice(9)}`);
  });

  test("every folder with code is in a layer", () => {
    const units = new Set([...repositorySources().keys()].map(unitOf));
    expect([...units].filter((u) => layerOf(u) === undefined)).toEqual([]);
  });
});

describe("the checks fail on fabricated violations", () => {
  const check = (files: Record<string, string>) =>
    checkLayering(new Map(Object.entries(files))).map((v) => `${v.rule} ${v.message}`);

  test("L1: core imports a handler", () => {
    expect(
      check({ "core/agent/x.ts": 'import { defaultRegistry } from "../../handlers/index.ts";\n' }),
    ).toEqual([
      "L1 core/agent/x.ts → handlers/index.ts: core (core/agent) may not import handlers (handlers)",
    ]);
  });

  test("L1: core imports a type only, from the fleet, over several lines", () => {
    const src = 'import type {\n  ReleaseEngine,\n  Plan,\n} from "../../fleet/engine.ts";\n';
    expect(check({ "core/update/y.ts": src })).toEqual([
      "L1 core/update/y.ts → fleet/engine.ts: core (core/update) may not import fleet (fleet)",
    ]);
  });

  test("L1: an adapter imports a content type, a lazy import counts", () => {
    expect(
      check({
        "plugins/query/z.ts": 'const m = await import("../../handlers/ScheduledQueryPack/index.ts");\n',
      }),
    ).toEqual([
      "L1 plugins/query/z.ts → handlers/ScheduledQueryPack/index.ts: plugins (plugins/query) may not import types (handlers/ScheduledQueryPack)",
    ]);
  });

  test("L1: an adapter imports another adapter; shared code imports a content type", () => {
    expect(
      check({
        "plugins/sinks/a.ts": 'export { x } from "../query/engine.ts";\n',
        "handlers/_shared/lua/b.ts": 'import "../../Behavior/index.ts";\n',
      }),
    ).toEqual([
      "L1 plugins/sinks/a.ts → plugins/query/engine.ts: adapter plugins/sinks imports adapter plugins/query",
      "L1 handlers/_shared/lua/b.ts → handlers/Behavior/index.ts: shared (handlers/_shared/lua) may not import types (handlers/Behavior)",
    ]);
  });

  test("L2: a content type imports another one it did not declare", () => {
    expect(check({ "handlers/Behavior/c.ts": 'import { x } from "../DatasetA/engine.ts";\n' })).toEqual([
      "L2 handlers/Behavior/c.ts → handlers/DatasetA/engine.ts: content type handlers/Behavior imports type handlers/DatasetA",
    ]);
    expect(check({ "handlers/DatasetA/d.ts": 'import { x } from "../LocalRepData/index.ts";\n' })).toEqual(
      [],
    );
  });

  test("L3: a value cycle between two kernel folders is found; type-only imports make none", () => {
    const values = {
      "core/handler/h.ts": 'import { expandManifest } from "../host/policy.ts";\n',
      "core/host/c.ts": 'import { createCapabilities } from "../handler/capabilities.ts";\n',
    };
    expect(check(values)).toEqual([
      "L3 cycle core/handler → core/host → core/handler: core/handler/h.ts → core/host/policy.ts; core/host/c.ts → core/handler/capabilities.ts",
    ]);
    const types = { ...values, "core/handler/h.ts": 'import { type PathVars } from "../host/policy.ts";\n' };
    expect(check(types)).toEqual([]);
  });

  test("L3: a longer cycle is reported once, with every step", () => {
    const v = check({
      "core/a/x.ts": 'import { b } from "../b/x.ts";\n',
      "core/b/x.ts": 'import { c } from "../c/x.ts";\n',
      "core/c/x.ts": 'import { a } from "../a/x.ts";\n',
    });
    expect(v).toHaveLength(1);
    expect(v[0]).toContain("core/a → core/b → core/c → core/a");
  });

  test("L4: tests may use the shared fixtures; production code may not", () => {
    const fixture = 'import { makeVendor } from "../../test/fixtures/vendor.ts";\n';
    expect(check({ "core/agent/e.test.ts": fixture })).toEqual([]);
    expect(check({ "core/agent/e.ts": fixture })).toEqual([
      "L1 core/agent/e.ts → test/fixtures/vendor.ts: core (core/agent) may not import entry (test)",
    ]);
    // …and a kernel test still may not reach a content type.
    expect(check({ "core/agent/f.test.ts": 'import "../../handlers/Hmpa_data/index.ts";\n' })).toHaveLength(
      1,
    );
  });

  test("strings and comments that merely look like imports are not imports", () => {
    const src = [
      "/**",
      ' * e.g. import x from "../../handlers/index.ts"',
      " */",
      'const s = "import y from \\"../../handlers/index.ts\\"";',
    ].join("\n");
    expect(check({ "core/g.ts": src })).toEqual([]);
  });
});
