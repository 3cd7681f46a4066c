import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import * as classic from "zod";
import { z } from "./zod.ts";

const ROOT = join(import.meta.dir, "../..");

/** The messages of a failed parse, path first: what users read in CLI errors and status. */
function messages(r: {
  success: boolean;
  error?: { issues: readonly { path: PropertyKey[]; message: string }[] };
}) {
  return (r.error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("zod/mini with the English messages (core/schema/zod.ts)", () => {
  // The same schema written both ways, and inputs that fail each kind of check the agent's schemas use.
  const cases: [string, classic.ZodType, z.ZodMiniType, unknown[]][] = [
    [
      "string length",
      classic.string().min(2).max(4),
      z.string().check(z.minLength(2), z.maxLength(4)),
      ["a", "abcde", 3],
    ],
    [
      "integer range",
      classic.number().int().min(0).max(9),
      z.int().check(z.gte(0), z.lte(9)),
      [1.5, -1, 10, "1"],
    ],
    ["regex", classic.string().regex(/^[a-z]+$/), z.string().check(z.regex(/^[a-z]+$/)), ["A1"]],
    ["enum", classic.enum(["a", "b"]), z.enum(["a", "b"]), ["c", 1]],
    [
      "strict object",
      classic.object({ a: classic.string(), b: classic.number().optional() }).strict(),
      z.strictObject({ a: z.string(), b: z.optional(z.number()) }),
      [{}, { a: "x", c: 1 }, { a: 1, b: "y" }, null],
    ],
    [
      "array length",
      classic.array(classic.string()).max(1),
      z.array(z.string()).check(z.maxLength(1)),
      [["a", "b"], [1]],
    ],
  ];
  for (const [name, before, after, inputs] of cases)
    test(`${name}: the messages classic gives`, () => {
      for (const input of inputs) {
        const expected = messages(before.safeParse(input));
        expect(expected.length).toBeGreaterThan(0);
        expect(messages(after.safeParse(input))).toEqual(expected);
        // Not the locale-less "Invalid input" mini gives on its own.
        expect(
          expected.some((m) => /expected|Too (big|small)|Unrecognized|Invalid (string|option)/.test(m)),
        ).toBe(true);
      }
    });
});

/**
 * Where classic zod must not be reachable: the processes the supervisor starts, ten or so at a
 * time, each paying ~1.5 MiB for classic's module (zod.ts); and `agent scan`, a one-shot command
 * whose every module is evaluated interpreted (core/cli/schema-mode.ts), where classic cost ~20 ms
 * of CPU (bench/scan-startup.ts). Followed through static and, from an entry marked so, dynamic
 * imports of the sources; type-only imports are erased and cost nothing.
 */
const LEAN_ENTRIES: [file: string, dynamic: boolean][] = [
  ["bin/agent-host.ts", true],
  ["core/cli/schema-mode.ts", true],
  ["handlers/ScheduledQueryPack/worker.ts", true],
  ["core/crypto/crypto-worker.ts", true],
  // `agent scan`: what the entry points load before the command, then the command's own modules.
  ["bin/agent.ts", false],
  ["bin/agent-main.ts", false],
  ["handlers/DatasetA/scan/cli-agent-scan.ts", true],
];

/**
 * `agent run` — the supervisor, its control plane (core/control/openapi-route.ts), the services and
 * route extensions the entry point wires in — and every other `agent` command: all the agent
 * executable loads, dynamic imports included.
 */
const AGENT_EXECUTABLE: [file: string, dynamic: boolean][] = [["bin/agent-main.ts", true]];
const CLASSIC = /^(zod|zod\/v4|zod\/v4\/classic|zod\/v3|@hono\/zod-openapi)$/;

function classicImporters(entries: [file: string, dynamic: boolean][]): string[] {
  const transpiler = new Bun.Transpiler({ loader: "ts" });
  const seen = new Set<string>();
  const found: string[] = [];
  const walk = (file: string, from: string, dynamic: boolean) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, "utf8").replace(/^#!.*/, "");
    for (const imp of transpiler.scanImports(source)) {
      if (!dynamic && imp.kind === "dynamic-import") continue;
      if (CLASSIC.test(imp.path))
        found.push(`${relative(ROOT, file)} imports ${imp.path} (reached from ${from})`);
      else if (imp.path.startsWith(".")) {
        const next = resolve(dirname(file), imp.path);
        // Modules only: the assets some import (wasm, sql, json) import nothing.
        if (next.endsWith(".ts") && existsSync(next)) walk(next, relative(ROOT, file), dynamic);
      }
    }
  };
  for (const [file, dynamic] of entries) walk(join(ROOT, file), file, dynamic);
  return found;
}

describe("classic zod stays out of the agent executable", () => {
  test("no module they load imports it", () => {
    expect(classicImporters(LEAN_ENTRIES)).toEqual([]);
  });

  test("nor anything of the agent executable: the supervisor's control plane uses mini too", () => {
    expect(classicImporters(AGENT_EXECUTABLE)).toEqual([]);
  });

  test("the check follows imports and sees one (the vendor's fleet service loads classic)", () => {
    expect(classicImporters([["fleet/fleet.ts", false]]).length).toBeGreaterThan(0);
  });
});
