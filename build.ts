/**
 * Builds the two single-file executables: dist/agent and dist/contentctl.
 * They must run on a host with no source tree and no node_modules, so the
 * build checks that every lazily imported subcommand ended up inside the
 * bundle, and the compiled binaries ignore any .env or bunfig.toml lying
 * around where they are started (a stray file must not change agent
 * behaviour).
 *
 *   bun build.ts [--outdir dist] [--sourcemap] [--no-minify] [--only agent|contentctl]
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ONE_SHOT_JIT_POLICY } from "./core/jsc-options.ts";

export const ROOT = import.meta.dir;

export const TARGETS = [
  // workers: modules started with `new Worker` (core/sensors/reader.ts), embedded as extra entry points.
  // jitPolicy: the JIT policy the executable starts with (core/jsc-options.ts, ONE_SHOT_JIT_POLICY).
  {
    name: "agent",
    entry: "bin/agent.ts",
    workers: ["core/sensors/reader-worker.ts"],
    jitPolicy: ONE_SHOT_JIT_POLICY,
  },
  { name: "contentctl", entry: "bin/contentctl.ts", workers: [], jitPolicy: 1 },
] as const;
export type TargetName = (typeof TARGETS)[number]["name"];

export interface BuildOptions {
  outdir?: string;
  minify?: boolean;
  sourcemap?: boolean;
  only?: TargetName[];
  /** Progress lines; silent when omitted. */
  report?: (line: string) => void;
}

export interface BuiltBinary {
  name: TargetName;
  path: string;
  bytes: number;
  ms: number;
  inputs: number;
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

export function gitCommit(): string {
  const r = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "ignore",
  });
  const sha = r.stdout.toString().trim();
  return r.exitCode === 0 && /^[0-9a-f]{4,40}$/.test(sha) ? sha : "unknown";
}

/**
 * Static `import("…")` specifiers in an entry point. A lazily imported
 * subcommand the bundler could not see would fail only when someone runs
 * that subcommand on a host — too late, so the build refuses it instead.
 */
export function lazyImports(entryPath: string): string[] {
  const source = readFileSync(entryPath, "utf8");
  return [...source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!);
}

/**
 * Rules G1 and G3 (core/host/policy.ts) before anything ships: every built-in
 * handler's declared privileges fit its host group, and groups that share a
 * process have identical allowances. Returns the violations.
 */
export async function handlerPrivilegeViolations(): Promise<string[]> {
  const [{ defaultRegistry }, { registryViolations, processesOf }] = await Promise.all([
    import("./handlers/index.ts"),
    import("./core/host/policy.ts"),
  ]);
  const registry = defaultRegistry();
  return [...registryViolations(registry), ...processesOf(registry.groups()).refused].map(
    (e) => `${e.code}: ${e.message}`,
  );
}

/**
 * Host processes start with JavaScriptCore options (core/jsc-options.ts). A
 * runtime that no longer knows one refuses to start at all ("invalid JSC
 * environment variable"), which would leave every host group down; the
 * executable carries its own runtime, so one start with those options here
 * proves them for every host it will launch, and for the supervisor, which
 * re-executes itself with them (core/jsc-reexec.ts). Returns why it failed, or null.
 */
export async function jscOptionsRefused(executable: string): Promise<string | null> {
  const { AGENT_RUNTIME_ENV } = await import("./core/jsc-options.ts");
  const r = Bun.spawnSync([executable, "--version"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...AGENT_RUNTIME_ENV },
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode === 0) return null;
  const why = r.stderr.toString().trim().split("\n").slice(0, 3).join(" ");
  return `does not start with the host JavaScriptCore options (core/jsc-options.ts): exit ${r.exitCode}: ${why}`;
}

export async function build(opts: BuildOptions = {}): Promise<BuiltBinary[]> {
  const violations = await handlerPrivilegeViolations();
  if (violations.length > 0) {
    throw new Error(`handler manifests exceed their host groups:\n  ${violations.join("\n  ")}`);
  }
  const outdir = resolve(opts.outdir ?? join(ROOT, "dist"));
  const version = packageVersion();
  const commit = gitCommit();
  const report = opts.report ?? (() => {});
  report(`building outpost ${version} (${commit}) → ${relative(process.cwd(), outdir) || "."}`);

  const built: BuiltBinary[] = [];
  for (const target of TARGETS) {
    if (opts.only && !opts.only.includes(target.name)) continue;
    const entry = join(ROOT, target.entry);
    const outfile = join(outdir, target.name);
    const started = performance.now();
    const result = await Bun.build({
      entrypoints: [entry, ...target.workers.map((w) => join(ROOT, w))],
      target: "bun",
      minify: opts.minify ?? true,
      // Precompiled bytecode: the bundle holds every subcommand, and parsing it all on each
      // start cost ~60 ms; with bytecode `agent --version` starts in ~20 ms.
      bytecode: true,
      // Code splitting: each lazily imported subcommand becomes its own chunk inside the executable,
      // loaded only when run, so `agent --version` no longer deserializes the whole CLI (2.5× → ~1×
      // `bun -e 0`, bench/startup.ts).
      splitting: true,
      format: "esm",
      sourcemap: opts.sourcemap ? "inline" : "none",
      metafile: true,
      define: {
        OUTPOST_VERSION: JSON.stringify(version),
        OUTPOST_COMMIT: JSON.stringify(commit),
      },
      compile: { outfile, autoloadDotenv: false, autoloadBunfig: false, jitPolicy: target.jitPolicy },
      throw: false,
    });
    if (!result.success) {
      for (const message of result.logs) console.error(String(message));
      throw new Error(`build of ${target.entry} failed (${result.logs.length} messages)`);
    }

    const meta = result.metafile as unknown as { inputs: Record<string, unknown> } | undefined;
    // Metafile paths are relative to the working directory, like esbuild's.
    const inputs = new Set(Object.keys(meta?.inputs ?? {}).map((p) => resolve(p)));
    // The entry may hand over to a sibling module (bin/agent.ts → agent-main.ts): check its lazy imports too.
    const checked = [
      entry,
      ...lazyImports(entry)
        .map((spec) => resolve(dirname(entry), spec))
        .filter((f) => f.startsWith(dirname(entry))),
    ];
    const missing = checked
      .flatMap((file) => [file, ...lazyImports(file).map((spec) => resolve(dirname(file), spec))])
      .filter((file) => !inputs.has(file));
    if (missing.length > 0) {
      throw new Error(
        `${target.entry}: lazily imported modules not bundled: ${missing.map((m) => relative(ROOT, m)).join(", ")}`,
      );
    }

    if (target.name === "agent") {
      const refused = await jscOptionsRefused(outfile);
      if (refused) throw new Error(`${relative(ROOT, outfile)}: ${refused}`);
    }

    const ms = Math.round(performance.now() - started);
    const bytes = statSync(outfile).size;
    built.push({ name: target.name, path: outfile, bytes, ms, inputs: inputs.size });
    report(
      `  ${target.name.padEnd(10)} ${(bytes / 1024 / 1024).toFixed(1).padStart(6)} MiB  ${String(ms).padStart(5)} ms  ${inputs.size} modules`,
    );
  }
  return built;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      outdir: { type: "string" },
      sourcemap: { type: "boolean", default: false },
      "no-minify": { type: "boolean", default: false },
      only: { type: "string", multiple: true },
    },
    strict: true,
  });
  const names = TARGETS.map((t) => t.name as string);
  for (const o of values.only ?? []) {
    if (!names.includes(o)) {
      console.error(`build.ts: --only must be one of ${names.join(", ")}`);
      process.exit(2);
    }
  }
  const started = performance.now();
  try {
    await build({
      outdir: values.outdir,
      sourcemap: values.sourcemap,
      minify: !values["no-minify"],
      only: values.only as TargetName[] | undefined,
      report: (line) => console.log(line),
    });
  } catch (e) {
    console.error(`build.ts: ${(e as Error).message}`);
    process.exit(1);
  }
  console.log(`done in ${Math.round(performance.now() - started)} ms`);
}
