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
import { lazyImports } from "../build.ts";
import { GROUP_TYPES } from "../handlers/host-registry.ts";

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

const SCAN_CLI = ["bin/agent.ts", "bin/agent-main.ts", "handlers/DatasetA/scan/cli-agent-scan.ts"];
const OFFLINE_SCAN = [
  ...SCAN_CLI,
  "handlers/DatasetA/scan/runtime.ts",
  "core/agent/runtime.ts",
  "handlers/manifests.ts",
];

describe("what a one-shot `agent scan` evaluates", () => {
  const cli = SCAN_CLI;
  const offline = OFFLINE_SCAN;

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

  test("no host group evaluates the config schemas or the X.509/CMS stack at start", () => {
    // The repair host reached core/config.ts for statePaths (~880 zod schemas, ~1 MiB of heap); the
    // appfeed host reached the CMS stack for USERAPPFEED's tenant signature (~270 modules), which it
    // now checks in `agent crypto-worker` (handlers/_shared/tenant/signature.ts).
    // AgentSoftware and CRT verify signed executables and certificates: the stack is their job.
    const needsCrypto = new Set(["software", "install"]);
    for (const [group, types] of Object.entries(GROUP_TYPES)) {
      const graph = evaluated(
        ["bin/agent-host.ts", "core/host/child.ts", ...types.map((t) => `handlers/${t}/index.ts`)],
        readRepo,
      );
      expect(graph.has("core/host/protocol.ts")).toBe(true);
      const bad = needsCrypto.has(group)
        ? /^core\/config\.ts$/
        : /^core\/(config|crypto\/(cms|cms-verify|cms-sign|engine))\.ts$/;
      expect([group, offenders(graph, bad)]).toEqual([group, []]);
    }
  });

  test("the appfeed host checks tenant signatures in the crypto worker, not in its own heap", () => {
    // A dynamic import is evaluated for good once it runs: USERAPPFEED's T4 check did that in the
    // appfeed host (12.8 → 8.0 MiB anonymous once moved out). Only tenantSign (contentctl) may.
    const graph = evaluated(["handlers/APPFEED/index.ts", "handlers/USERAPPFEED/index.ts"], readRepo);
    const dynamicCrypto = /import\(\s*["'][^"']*core\/crypto\/(cms|cms-verify|engine)\.ts["']\s*\)/;
    const loading = [...graph.keys()].filter((f) => dynamicCrypto.test(readRepo(f) ?? ""));
    expect(loading).toEqual([]);
    expect(graph.has("core/crypto/remote-trust.ts")).toBe(true);
  });

  test("the supervisor's update cycle: no X.509/CMS stack (its checks run in `agent crypto-worker`)", () => {
    // What runtime.ts imports for a cycle, and what a cycle reaches: the trust core, the transports,
    // the spool, the package reader, the policy bundle. With hosts in processes the trust store is a
    // RemoteTrust (core/crypto/remote-trust.ts); verify.ts imports cms-verify.ts only for a TrustStore.
    const graph = evaluated(
      [
        "core/agent/runtime.ts",
        "core/update/client.ts",
        "core/update/transport.ts",
        "core/update/trust-expiry.ts",
        "core/update/spool.ts",
        "core/crypto/remote-trust.ts",
        // Imported by the trust core when a package is opened.
        "core/package/open.ts",
        "core/effective/service.ts",
        "bin/agent-main.ts",
      ],
      readRepo,
    );
    expect(graph.has("core/update/trusted-state.ts")).toBe(true);
    expect(graph.has("core/crypto/verify.ts")).toBe(true);
    expect(offenders(graph, /^core\/crypto\/(cms|cms-verify|cms-sign|engine)\.ts$/)).toEqual([]);
  });

  test("the supervisor's repair pass after each cycle: no X.509/CMS stack, no Lua interpreter", () => {
    // RepairKit's rules run in the repair host and its trust inspection in the crypto worker
    // (handlers/RepairKit/trust.ts): until both moved out, the first cycle's repair pass loaded the
    // CMS stack and wasmoon into the supervisor for good. The Lua engine is a dynamic import, for the
    // baked-in fallback and the offline CLI.
    const graph = evaluated(["handlers/RepairKit/run.ts", "bin/agent-main.ts"], readRepo);
    expect(graph.has("handlers/RepairKit/report.ts")).toBe(true);
    expect(graph.has("handlers/RepairKit/trust.ts")).toBe(true);
    expect(graph.has("handlers/RepairKit/env.ts")).toBe(false);
    expect(
      offenders(
        graph,
        /^(core\/crypto\/(cms|cms-verify|cms-sign|engine)\.ts|handlers\/_shared\/lua\/(sandbox|interpreter)\.ts)$/,
      ),
    ).toEqual([]);
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

describe("node's stdio streams", () => {
  /** Folders of code that runs in the agent's and contentctl's processes (tests and dev scripts aside). */
  const RUNTIME = ["bin", "core", "handlers", "plugins", "fleet"];
  /** Where a stream is wanted: the scan progress bar, drawn only on a terminal (isTerminal first). */
  const ALLOWED = new Set(["handlers/DatasetA/scan/cli-agent-scan.ts"]);
  const touches = /\bprocess\.std(?:in|out|err)\b/;
  const code = (source: string) => source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");

  test("no runtime module touches process.stdout/stderr/stdin (20 ms and 2 MiB per process: core/stdio.ts)", () => {
    const glob = new Bun.Glob(`{${RUNTIME.join(",")}}/**/*.ts`);
    const offending = [...glob.scanSync({ cwd: ROOT })]
      .filter((p) => !/\.test\.ts$|\/testdata\/|\/fakes\//.test(p) && !ALLOWED.has(p))
      .filter((p) => touches.test(code(readFileSync(join(ROOT, p), "utf8"))))
      .sort();
    expect(offending).toEqual([]);
  });

  test("the check sees a touch in code and ignores one in a comment", () => {
    expect(touches.test(code("const t = process.stdin.isTTY;"))).toBe(true);
    expect(touches.test(code("// process.stdout costs 20 ms\n/* process.stderr */ const x = 1;"))).toBe(
      false,
    );
  });
});

describe("node builtins that build node's stream classes (core/lazy-builtins.ts)", () => {
  /** Value imports of these builtins cost every process that evaluates them ~20 ms and ~2 MiB. */
  const STREAM_BUILTINS =
    /^import\s+(?!type\b)[^;]*?from\s*"node:(crypto|net|dgram|zlib|stream|tty|readline|http|https)"/gm;
  const builtinsIn = (entries: string[]) =>
    [...evaluated(entries, readRepo)].flatMap(([path, chain]) =>
      [...(readRepo(path) ?? "").matchAll(STREAM_BUILTINS)].map((m) => `node:${m[1]} ← ${chain.join(" → ")}`),
    );
  /** What `agent run` wires in (bin/agent-main.ts, setAgentWiring): services, routes, sinks, registries. */
  const wiring = () => {
    const main = readRepo("bin/agent-main.ts")!;
    const block = main.slice(
      main.indexOf("setAgentWiring({"),
      main.indexOf("\n});", main.indexOf("setAgentWiring({")),
    );
    return lazyImports(join(ROOT, "bin/agent-main.ts"))
      .filter((spec) => block.includes(`"${spec}"`))
      .map((spec) => normalize(join("bin", spec)));
  };

  test("no host group evaluates one at start", () => {
    for (const [group, types] of Object.entries(GROUP_TYPES)) {
      const entries = [
        "bin/agent-host.ts",
        "core/host/child.ts",
        ...types.map((t) => `handlers/${t}/index.ts`),
      ];
      expect([group, builtinsIn(entries)]).toEqual([group, []]);
    }
  });

  test("the supervisor (`agent run` and everything it wires in) does not", () => {
    const entries = wiring();
    expect(entries).toContain("core/sensors/service.ts");
    expect(entries).toContain("plugins/sinks/events-service.ts");
    expect(builtinsIn(["bin/agent.ts", "bin/agent-main.ts", "core/cli/agent/run.ts", ...entries])).toEqual(
      [],
    );
  });

  test("a one-shot offline `agent scan` does not", () => {
    expect(builtinsIn(OFFLINE_SCAN)).toEqual([]);
  });

  test("the check sees a value import and ignores a type-only one", () => {
    const found = (src: string) => [...src.matchAll(STREAM_BUILTINS)].map((m) => m[1]);
    expect(found('import { connect } from "node:net";\nimport type * as Z from "node:zlib";')).toEqual([
      "net",
    ]);
    expect(found('import zlib from "node:zlib";')).toEqual(["zlib"]);
  });
});
