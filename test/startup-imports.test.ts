/**
 * What a one-shot command evaluates before it can do its work, checked on
 * the source: the static value imports reachable from its entry modules
 * (dynamic `import()` and type-only imports are not followed — they load
 * later or never). `agent scan` offline must not evaluate any handler's
 * code (its scanner host imports its own), nor the update machinery (CMS,
 * X.509); a host process must not evaluate the config schemas and control
 * client before it imports its group (issue 21, bench/scan-startup.ts).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

const STATIC_RE =
  /^\s*(?:import|export)\s+(type\s+)?([\w\s{},*$]*?)\s*from\s*["']([^"']+)["']|^\s*import\s+["']([^"']+)["']/gm;

/** Relative static value imports of one source file, as repository paths. */
export function staticImports(path: string, source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(STATIC_RE)) {
    const spec = m[3] ?? m[4]!;
    if (!spec.startsWith(".") || m[1]) continue;
    const clause = m[2]?.trim() ?? "";
    const names = /^\{[^}]*\}$/.test(clause)
      ? clause
          .slice(1, -1)
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
    if (names.length > 0 && names.every((n) => n.startsWith("type "))) continue;
    out.push(normalize(join(dirname(path), spec)));
  }
  return out;
}

/** Every module evaluated with `entries`, each with the chain that brings it in. */
export function evaluated(
  entries: string[],
  read: (path: string) => string | undefined,
): Map<string, string[]> {
  const chain = new Map<string, string[]>(entries.map((e) => [e, [e]]));
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift()!;
    const source = read(file);
    if (source === undefined) continue;
    for (const dep of staticImports(file, source)) {
      if (chain.has(dep)) continue;
      chain.set(dep, [...chain.get(file)!, dep]);
      queue.push(dep);
    }
  }
  return chain;
}

const readRepo = (path: string) => {
  const abs = join(ROOT, path);
  return existsSync(abs) ? readFileSync(abs, "utf8") : undefined;
};

/** The offending modules and how each is reached. */
const offenders = (graph: Map<string, string[]>, bad: RegExp) =>
  [...graph].filter(([p]) => bad.test(p)).map(([, c]) => c.join(" → "));

/** Any module of a content type's folder (handlers/<Type>/, handlers/_shared/) except a manifest. */
const HANDLER_CODE = /^handlers\/[A-Za-z_]+\/(?!.*manifest\.ts$)/;
/** What a scan requester runs itself: reading files, Live Protection, samples, reputation tags, ML requests. */
const REQUESTER_SIDE =
  /^handlers\/(DatasetA\/(scan|sxl|samples)\/|LocalRepData\/process-tagger\.ts$|MLModel\/scan-hook\.ts$|AgentSoftware\/format\.ts$)/;
const UPDATE_STACK =
  /^core\/(crypto\/(cms|cms-verify|engine|keys)\.ts|update\/(client|transport)\.ts|package\/open\.ts)$/;

describe("what a one-shot `agent scan` evaluates", () => {
  const cli = ["bin/agent.ts", "bin/agent-main.ts", "handlers/DatasetA/scan/cli-agent-scan.ts"];
  const offline = [
    ...cli,
    "handlers/DatasetA/scan/runtime.ts",
    "core/agent/runtime.ts",
    "handlers/manifests.ts",
  ];

  test("offline: no handler's code and no update machinery before the scanner host starts", () => {
    const graph = evaluated(offline, readRepo);
    // The graph is real: the kernel, the config schemas and every manifest are in it.
    expect(graph.has("core/config.ts")).toBe(true);
    expect(graph.has("core/host/manager.ts")).toBe(true);
    expect(graph.has("handlers/Behavior/manifest.ts")).toBe(true);
    // Of the content types' folders, only manifests and the requester side of a scan (reading files,
    // Live Protection, samples, reputation tags, ML scoring requests) — never a handler's own code.
    expect(
      offenders(graph, HANDLER_CODE).filter((c) => !REQUESTER_SIDE.test(c.split(" → ").at(-1)!)),
    ).toEqual([]);
    expect(offenders(graph, /^handlers\/_shared\/lua\//)).toEqual([]);
    expect(offenders(graph, UPDATE_STACK)).toEqual([]);
  });

  test("with an agent running: the control client, not the config schemas, session or offline runtime", () => {
    const graph = evaluated(cli, readRepo);
    expect(graph.has("core/control/client.ts")).toBe(true);
    const offline =
      /^(handlers\/DatasetA\/scan\/runtime\.ts|core\/agent\/runtime\.ts|core\/config\.ts|core\/cli\/agent\/session\.ts)$/;
    expect(offenders(graph, offline)).toEqual([]);
  });

  test("a host process: no config schemas or control client before its group's handlers", () => {
    const graph = evaluated(
      ["bin/agent.ts", "bin/agent-main.ts", "core/cli/agent/host.ts", "core/host/child.ts"],
      readRepo,
    );
    expect(graph.has("core/host/protocol.ts")).toBe(true);
    expect(offenders(graph, /^core\/(config\.ts|control\/client\.ts|cli\/agent\/session\.ts)$/)).toEqual([]);
    expect(offenders(graph, /^handlers\/[A-Za-z_]+\/index\.ts$/)).toEqual([]);
  });

  test("a scanner host: no X.509/CMS stack until its first PE file (Authenticode is a deferred import)", () => {
    const graph = evaluated(
      ["handlers/DatasetA/index.ts", "handlers/LocalRepData/index.ts", "handlers/MLModel/index.ts"],
      readRepo,
    );
    expect(graph.has("handlers/DatasetA/engine.ts")).toBe(true);
    expect(offenders(graph, /^(core\/crypto\/engine\.ts|handlers\/DatasetA\/authenticode\.ts)$/)).toEqual([]);
  });

  test("the check sees a static import of handler code, and ignores dynamic and type-only ones", () => {
    const fake: Record<string, string> = {
      "a.ts": 'import { x } from "./handlers/Behavior/index.ts";\nimport type { Y } from "./core/config.ts";',
      "b.ts":
        'const m = () => import("./handlers/Behavior/index.ts");\nimport { type Z } from "./core/config.ts";',
      "handlers/Behavior/index.ts": 'export * from "../_shared/lua/sandbox.ts";',
    };
    const a = evaluated(["a.ts"], (p) => fake[p]);
    expect(offenders(a, /^handlers\/_shared\/lua\//)).toEqual([
      "a.ts → handlers/Behavior/index.ts → handlers/_shared/lua/sandbox.ts",
    ]);
    expect(a.has("core/config.ts")).toBe(false);
    expect([...evaluated(["b.ts"], (p) => fake[p]).keys()]).toEqual(["b.ts"]);
  });
});
