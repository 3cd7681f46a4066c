/**
 * The CLI file-naming convention (README "Layout"), enforced. What the tree
 * actually does, read before writing this (every file that calls citty's
 * `defineCommand`):
 *
 *   - The two binaries' roots (`bin/agent-main.ts`, `bin/contentctl.ts`) list
 *     their top-level commands in `subCommands`, each loaded lazily.
 *   - A folder holding one binary's commands is named after it:
 *     `core/cli/agent/` (agent), `core/cli/contentctl/` and `fleet/contentctl/`
 *     (contentctl); its files are named by the command path, without a
 *     prefix (`content-list.ts` = `agent content list`, `release-start.ts`).
 *   - Anywhere else — a command beside the feature that owns it — the file is
 *     `cli-<binary>-<command path>.ts`: `handlers/DatasetA/scan/cli-agent-scan.ts`
 *     (`agent scan`), `handlers/EPIPS_data/cli-agent-ips-status.ts`
 *     (`agent ips status`), `plugins/sinks/cli-contentctl-lake.ts`.
 *   - It is NOT one `defineCommand` per file: a command and its small
 *     subcommands share a file (`cli-contentctl-sxl.ts` defines `sxl` with
 *     serve/keygen/receive, and `samples`); a subcommand that grew gets its own
 *     `cli-<binary>-<command>-<sub>.ts` (`cli-agent-policy-apply.ts`).
 *
 * So the rules:
 *
 *   N1  a (non-test) file that defines a command is a binary's root, lives in
 *       a binary's command folder, or is named `cli-<binary>-<command>.ts`
 *   N2  a file named `cli-*.ts` states a binary (`cli-agent-` or
 *       `cli-contentctl-`), then kebab-case words, and defines a command
 *   N3  its command path starts with a top-level command that binary's root
 *       registers (`ips-status` → `agent ips`; `hmpa-build` → `contentctl hmpa-build`)
 *   N4  the binary it states is true: the file is reachable through the
 *       imports (static or lazy) of that binary's root
 *
 * Test files and test/ fixtures are outside the convention. The checks are
 * pure functions of (path → source); the last tests feed them fabricated
 * violations to prove they fail.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { basename, dirname, join, normalize, resolve } from "node:path";
import { Glob } from "bun";

const ROOT = resolve(import.meta.dir, "..");

export const BINARY_ROOTS = { agent: "bin/agent-main.ts", contentctl: "bin/contentctl.ts" } as const;
type Binary = keyof typeof BINARY_ROOTS;

/** Folders that hold one binary's commands, named after it. */
export const COMMAND_FOLDERS: Readonly<Record<string, Binary>> = {
  "core/cli/agent": "agent",
  "core/cli/contentctl": "contentctl",
  "fleet/contentctl": "contentctl",
};

const CLI_FILE = /^cli-(agent|contentctl)-([a-z0-9]+(?:-[a-z0-9]+)*)\.ts$/;
const isTestCode = (path: string) =>
  path.startsWith("test/") || /\.test\.ts$|(^|\/)(testutil|testkit)\.ts$|(^|\/)testdata\//.test(path);
const definesCommand = (src: string) => /\bdefineCommand\(/.test(src) && /from ["']citty["']/.test(src);

/** Top-level command names a binary's root registers in `subCommands`. */
export function registeredCommands(rootSource: string): string[] {
  const start = rootSource.indexOf("subCommands: {");
  if (start < 0) return [];
  const body = rootSource.slice(start);
  return [...body.matchAll(/^\s+(?:"([a-z0-9-]+)"|([a-z0-9]+)):\s*\(\)\s*=>/gm)].map((m) => (m[1] ?? m[2])!);
}

/** Relative imports (static, re-exports and lazy `import()`) of one file, as repository paths. */
function importsOf(path: string, src: string): string[] {
  const out: string[] = [];
  for (const m of src.matchAll(/(?:from\s*|import\s*\(\s*|^\s*import\s+)["'](\.[^"']+)["']/gm))
    out.push(normalize(join(dirname(path), m[1]!)));
  return out;
}

/** Every file reachable from `root` through relative imports. */
function reachable(sources: Map<string, string>, root: string): Set<string> {
  const seen = new Set([root]);
  const queue = [root];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const next of importsOf(file, sources.get(file) ?? "")) {
      if (seen.has(next) || !sources.has(next)) continue;
      seen.add(next);
      queue.push(next);
    }
  }
  return seen;
}

/** Which binary a command file belongs to and its command path, or a naming problem. */
function commandFileOf(path: string): { binary: Binary; command: string } | undefined {
  const folder = COMMAND_FOLDERS[dirname(path)];
  if (folder) return { binary: folder, command: basename(path, ".ts") };
  const m = CLI_FILE.exec(basename(path));
  return m ? { binary: m[1] as Binary, command: m[2]! } : undefined;
}

export function checkCliNaming(sources: Map<string, string>): string[] {
  const problems: string[] = [];
  const roots = Object.values(BINARY_ROOTS) as string[];
  const registered = Object.fromEntries(
    Object.entries(BINARY_ROOTS).map(([b, root]) => [b, registeredCommands(sources.get(root) ?? "")]),
  ) as Record<Binary, string[]>;
  const reach = Object.fromEntries(
    Object.entries(BINARY_ROOTS).map(([b, root]) => [b, reachable(sources, root)]),
  ) as Record<Binary, Set<string>>;
  for (const [path, src] of [...sources].sort(([a], [b]) => a.localeCompare(b))) {
    if (isTestCode(path) || roots.includes(path)) continue;
    const named = basename(path).startsWith("cli-");
    const defines = definesCommand(src);
    if (!defines && !named) continue;
    if (named && !CLI_FILE.test(basename(path))) {
      problems.push(`N2 ${path}: a cli-*.ts file is cli-agent-<command>.ts or cli-contentctl-<command>.ts`);
      continue;
    }
    if (named && !defines) {
      problems.push(`N2 ${path}: named as a command file but defines no command (defineCommand)`);
      continue;
    }
    const file = commandFileOf(path);
    if (!file) {
      problems.push(
        `N1 ${path}: defines a command outside a binary's command folder; name it cli-<binary>-<command>.ts`,
      );
      continue;
    }
    const top = registered[file.binary].find((c) => file.command === c || file.command.startsWith(`${c}-`));
    if (!top) {
      problems.push(
        `N3 ${path}: ${file.binary} registers no command "${file.command.split("-")[0]}" (${BINARY_ROOTS[file.binary]})`,
      );
      continue;
    }
    if (!reach[file.binary].has(path)) {
      problems.push(
        `N4 ${path}: not reachable from ${BINARY_ROOTS[file.binary]}, the binary its name states`,
      );
    }
  }
  return problems;
}

function repositorySources(): Map<string, string> {
  const out = new Map<string, string>();
  for (const path of new Glob("**/*.ts").scanSync({ cwd: ROOT, followSymlinks: false })) {
    if (/^(node_modules|dist|demo|\.tmp|\.git)\//.test(path) || path.includes("/node_modules/")) continue;
    out.set(path, readFileSync(join(ROOT, path), "utf8"));
  }
  return out;
}

describe("CLI files in this repository", () => {
  test("every command file is named by its binary and command, and belongs to that binary (N1–N4)", () => {
    const sources = repositorySources();
    // The walk is real: both binaries register commands, and feature folders hold many of them.
    expect(registeredCommands(sources.get(BINARY_ROOTS.agent)!).length).toBeGreaterThan(25);
    expect(registeredCommands(sources.get(BINARY_ROOTS.contentctl)!).length).toBeGreaterThan(15);
    const cliFiles = [...sources.keys()].filter((p) => !isTestCode(p) && basename(p).startsWith("cli-"));
    expect(cliFiles.length).toBeGreaterThan(25);
    expect(checkCliNaming(sources)).toEqual([]);
  });
});

describe("the checks fail on fabricated violations", () => {
  const ROOTS = {
    "bin/agent-main.ts":
      'const main = defineCommand({ subCommands: {\n    scan: () => import("../handlers/X/cli-agent-scan.ts"),\n    "run-repair": () => import("../handlers/X/cli-agent-run-repair.ts"),\n    rep: () => import("../handlers/X/cli-contentctl-rep.ts"),\n  } });\n',
    "bin/contentctl.ts":
      'const main = defineCommand({ subCommands: {\n    rep: () => import("../handlers/X/cli-contentctl-other.ts"),\n  } });\n',
  };
  const COMMAND =
    'import { defineCommand } from "citty";\nexport default defineCommand({ meta: { name: "x" } });\n';
  const check = (files: Record<string, string>) =>
    checkCliNaming(new Map(Object.entries({ ...ROOTS, ...files })));

  test("well-named, registered, reachable files pass; a subcommand file matches its command's prefix", () => {
    expect(
      check({
        "handlers/X/cli-agent-scan.ts": `${COMMAND}import "./cli-agent-scan-status.ts";\n`,
        "handlers/X/cli-agent-scan-status.ts": COMMAND,
        "handlers/X/cli-agent-run-repair.ts": COMMAND,
        "handlers/X/helper.ts": "export const x = 1;\n",
        "handlers/X/cli-agent.test.ts": COMMAND,
      }),
    ).toEqual([]);
  });

  test("N1: a command defined in a file named like any other", () => {
    expect(check({ "handlers/X/scan.ts": COMMAND })).toEqual([
      "N1 handlers/X/scan.ts: defines a command outside a binary's command folder; name it cli-<binary>-<command>.ts",
    ]);
  });

  test("N2: a cli- file without its binary, in camel case, or without a command", () => {
    expect(
      check({
        "handlers/X/cli-scan.ts": COMMAND,
        "handlers/X/cli-agent-runRepair.ts": COMMAND,
        "handlers/X/cli-agent-scan.ts": "export const notACommand = 1;\n",
      }),
    ).toEqual([
      "N2 handlers/X/cli-agent-runRepair.ts: a cli-*.ts file is cli-agent-<command>.ts or cli-contentctl-<command>.ts",
      "N2 handlers/X/cli-agent-scan.ts: named as a command file but defines no command (defineCommand)",
      "N2 handlers/X/cli-scan.ts: a cli-*.ts file is cli-agent-<command>.ts or cli-contentctl-<command>.ts",
    ]);
  });

  test("N3: a command its binary does not register (a prefix must end at a word)", () => {
    expect(
      check({ "handlers/X/cli-agent-scanner.ts": COMMAND, "core/cli/agent/nosuch.ts": COMMAND }),
    ).toEqual([
      'N3 core/cli/agent/nosuch.ts: agent registers no command "nosuch" (bin/agent-main.ts)',
      'N3 handlers/X/cli-agent-scanner.ts: agent registers no command "scanner" (bin/agent-main.ts)',
    ]);
  });

  test("N4: a file whose name states the other binary than the one that loads it", () => {
    expect(check({ "handlers/X/cli-contentctl-rep.ts": COMMAND })).toEqual([
      "N4 handlers/X/cli-contentctl-rep.ts: not reachable from bin/contentctl.ts, the binary its name states",
    ]);
  });
});
