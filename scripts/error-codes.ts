/**
 * Writes docs/error-codes.md from the source: every code passed to an
 * OutpostError subclass, grouped by family, with the files that raise it and
 * the CLI exit code it gives; and the "Exit codes" section of docs/cli.md,
 * from the one exit-code table (core/cli/exit-codes.ts).
 * `test/error-codes.test.ts` fails when either document is out of date, so a
 * code users grep for is always documented with the exit code it really has.
 *
 *   bun scripts/error-codes.ts          # rewrite docs/error-codes.md and docs/cli.md's exit codes
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import {
  EXIT,
  EXIT_MEANING,
  EXIT_RULES,
  type ExitCode,
  exitCodeForCode,
  NON_OUTPOST_RULES,
} from "../core/cli/exit-codes.ts";

const ROOT = join(import.meta.dir, "..");
const SOURCES = ["core", "handlers", "plugins", "fleet"];

const FAMILIES: [prefix: string, meaning: string][] = [
  ["SIG_", "signature, certificate chain or trust (core/crypto)"],
  ["PKG_", "package container, manifest or payload (core/package)"],
  ["IDX_", "repository index (core/repo, core/update)"],
  ["UPD_", "update transport and update rules (core/update)"],
  ["STORE_", "local content store (core/store)"],
  ["AGENT_", "agent process and state directory"],
  ["HND_", "content handlers"],
  ["HOST_", "host process health reasons on the health board (core/host)"],
  ["CFG_", "configuration, keys, command-line input"],
  ["CTL_", "control plane and its clients"],
  ["CLI_", "command-line usage"],
  ["LAKE_", "vendor data-lake receiver (contentctl lake)"],
  ["REL_", "staged releases (fleet)"],
  ["FLEET_", "fleet endpoint: heartbeats, enrollment, console login (fleet/server.ts, fleet/identity)"],
  ["SXL_", "Live Protection lookups over DNS (handlers/DatasetA/sxl, plugins/reputation)"],
  ["SMP_", "sample submission: envelope, queue, receiver (handlers/DatasetA/samples)"],
  ["POL_", "policy documents, RemapperRules, effective configuration (core/effective, docs/policy.md)"],
  ["FLAG_", "feature flags supplement (handlers/Flags, docs/policy.md)"],
  ["IPS_", "IPS packet path, self-disable and overrides (core/sensors/nfqueue, handlers/EPIPS_data)"],
  ["INST_", "agent install / uninstall (core/install)"],
  ["CRT_", "incompatible-software removal rules (handlers/CRT)"],
  ["TELEM_", "telemetry: allow-list refusals (handlers/TELEMSUP), fleet receiver (fleet/telemetry)"],
  ["SINK_", "results and event sinks: queue, destinations (plugins/sinks)"],
];

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts") && !p.includes("testdata")) out.push(p);
  }
  return out;
}

export function collectCodes(): Map<string, Set<string>> {
  const codes = new Map<string, Set<string>>();
  // Codes are raised through several small helpers (reject, fail, invalid…), so take every quoted
  // literal with a known family prefix from non-test sources rather than one call shape.
  const prefixes = FAMILIES.map(([p]) => p.slice(0, -1)).join("|");
  const re = new RegExp(`["'\`]((?:${prefixes})_[A-Z0-9_]+)["'\`]`, "g");
  for (const dir of SOURCES) {
    for (const file of walk(join(ROOT, dir))) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(re)) {
        const code = m[1];
        if (!code || code.endsWith("_")) continue;
        if (!codes.has(code)) codes.set(code, new Set());
        codes.get(code)!.add(relative(ROOT, file));
      }
    }
  }
  return codes;
}

export function renderDoc(codes: Map<string, Set<string>>): string {
  const lines = [
    "# Error codes",
    "",
    "Every error Outpost reports carries a stable code: it appears in the JSON log line",
    '(`"code"`), in `agent status` (`lastErrors[].code`), in alerts, in control-plane error',
    'bodies (`{"error":{"code",…}}`) and in `--json` CLI errors. Grep for it. The message',
    "next to it names the file and the reason. This page is generated from the source by",
    "`bun scripts/error-codes.ts`; a test keeps it current. What each update rule means is in",
    "[update-protocol.md](update-protocol.md), package checks in [package-format.md](package-format.md).",
    "",
    "| family | meaning | CLI exit codes ([cli.md](cli.md#exit-codes)) |",
    "| --- | --- | --- |",
    ...FAMILIES.map(([p, m]) => `| \`${p}*\` | ${m} | ${familyExits(p, codes)} |`),
    "",
  ];
  const sorted = [...codes.keys()].sort();
  const where = (c: string) =>
    [...(codes.get(c) ?? [])]
      .sort()
      .map((f) => `\`${f}\``)
      .join(", ");
  // Only codes with a known family prefix are collected, so every code lands in one section.
  for (const [prefix, meaning] of FAMILIES) {
    const inFamily = sorted.filter((c) => c.startsWith(prefix));
    if (inFamily.length === 0) continue;
    lines.push(`## ${prefix}* — ${meaning}`, "", "| code | exit | raised in |", "| --- | --- | --- |");
    for (const c of inFamily) lines.push(`| \`${c}\` | ${exitCodeForCode(c)} | ${where(c)} |`);
    lines.push("");
  }
  return lines.join("\n");
}

/** The exit codes the family's codes give, from the table (a family may span several). */
function familyExits(prefix: string, codes: Map<string, Set<string>>): string {
  const exits = new Set<ExitCode>();
  for (const c of codes.keys()) if (c.startsWith(prefix)) exits.add(exitCodeForCode(c));
  return [...exits].sort().join(", ") || "-";
}

const EXIT_BEGIN =
  "<!-- exit-codes: generated by `bun scripts/error-codes.ts` from core/cli/exit-codes.ts -->";
const EXIT_END = "<!-- /exit-codes -->";

function ruleCodes(match: readonly string[] | RegExp): string {
  return Array.isArray(match)
    ? match.map((c) => `\`${c}\``).join(", ")
    : `codes matching \`${(match as RegExp).source}\``;
}

/** A `|` inside a table cell ends the cell unless escaped. */
const cell = (text: string) => text.replaceAll("|", "\\|");

/** The "Exit codes" table of docs/cli.md: each code, its meaning, and the rules that lead to it, in order. */
export function renderExitTable(): string {
  const lines = [
    EXIT_BEGIN,
    "",
    "| Code | Meaning | Errors that give it (first matching rule wins) |",
    "| ---- | ------- | ---------------------------------------------- |",
  ];
  for (const exit of Object.values(EXIT)) {
    const rules = [
      ...EXIT_RULES.filter((r) => r.exit === exit).map((r) => `${ruleCodes(r.match)}: ${r.why}`),
      ...NON_OUTPOST_RULES.filter((r) => r.exit === exit).map((r) => r.what),
    ];
    lines.push(`| ${exit} | ${cell(EXIT_MEANING[exit])} | ${cell(rules.join("; ") || "-")} |`);
  }
  lines.push("", EXIT_END);
  return lines.join("\n");
}

export const CLI_DOC_PATH = join(ROOT, "docs/cli.md");

/** docs/cli.md with its exit-code section replaced by the generated one. */
export function renderCliDoc(current: string): string {
  const a = current.indexOf(EXIT_BEGIN);
  const b = current.indexOf(EXIT_END);
  if (a < 0 || b < a) throw new Error(`${CLI_DOC_PATH}: exit-code markers missing`);
  return current.slice(0, a) + renderExitTable() + current.slice(b + EXIT_END.length);
}

export const DOC_PATH = join(ROOT, "docs/error-codes.md");

if (import.meta.main) {
  const codes = collectCodes();
  writeFileSync(DOC_PATH, renderDoc(codes));
  writeFileSync(CLI_DOC_PATH, renderCliDoc(readFileSync(CLI_DOC_PATH, "utf8")));
  console.log(`docs/error-codes.md: ${codes.size} codes; docs/cli.md: exit codes`);
}
