/**
 * ESH (Endpoint Self Help) rules: regular expressions over named logs, each
 * pointing at the knowledge-base article that explains the problem and its
 * fix. A package holds one or more `*.jsonl` files, one rule per line (blank
 * lines and `#` comments allowed), so every refusal names its file and line:
 *
 *   {"id":"repo-unreachable","logs":["agent"],"pattern":"\"code\":\"UPD_NETWORK\"",
 *    "minCount":3,"windowSeconds":3600,
 *    "kba":{"id":"KBA-1001","url":"https://kb.example.com/KBA-1001","title":"Update repository unreachable"}}
 *
 * Pure, I/O-free checks, each citing its rule:
 *   E1 each line is one JSON object with exactly the rule fields
 *   E2 rule ids are unique within the package
 *   E3 the pattern compiles with RE2 (re2js): matching is linear in the line length,
 *      so backreferences and lookaround — which need backtracking — are refused
 *   E4 a log is `agent`, `journal:UNIT` (a systemd unit name) or `file:/absolute/path`
 *      (normalised: no `..`, `//`, globs or NUL)
 *   E5 the KBA link is https
 *   E6 at most MAX_RULES rules and MAX_PATTERN_CHARS per pattern
 * Which directories `file:` logs may be in is the agent's config (selfHelp.allowedDirs),
 * applied by the supervisor that reads them (service.ts).
 */
import { RE2JS } from "re2js";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export const MAX_RULES = 2000;
export const MAX_PATTERN_CHARS = 1024;

const UNIT = /^[A-Za-z0-9:_.@-]{1,128}$/;

export const LogSourceSchema = lazySchema(() =>
  z.string().check(
    z.refine((s) => {
      if (s === "agent") return true;
      if (s.startsWith("journal:")) return UNIT.test(s.slice(8));
      if (s.startsWith("file:")) {
        const p = s.slice(5);
        return (
          p.startsWith("/") &&
          p.length <= 1024 &&
          !/[\0*?[\]{}]/.test(p) &&
          !p.includes("//") &&
          p.split("/").every((seg) => seg !== ".." && seg !== ".") &&
          !p.endsWith("/")
        );
      }
      return false;
    }, "E4: a log is 'agent', 'journal:UNIT' or 'file:/absolute/path' (no '..', globs or trailing '/')"),
  ),
);

export const RuleSchema = lazySchema(() =>
  z.strictObject({
    id: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "id: letters, digits, . _ - (≤ 64)")),
    logs: z.array(LogSourceSchema).check(z.minLength(1), z.maxLength(8)),
    pattern: z
      .string()
      .check(
        z.minLength(1),
        z.maxLength(MAX_PATTERN_CHARS, `E6: pattern longer than ${MAX_PATTERN_CHARS} chars`),
      ),
    minCount: z._default(z.int().check(z.gte(1), z.lte(1_000_000)), 1),
    windowSeconds: z.int().check(z.gte(1), z.lte(30 * 86400)),
    kba: z.strictObject({
      id: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/, "kba.id such as KBA-1234")),
      url: z.string().check(
        z.url(),
        z.maxLength(512),
        z.refine((u) => u.startsWith("https://"), "E5: kba.url must be https"),
      ),
      title: z.string().check(z.minLength(1), z.maxLength(200)),
    }),
    description: z.optional(z.string().check(z.maxLength(1000))),
  }),
);

export type EshRule = z.infer<typeof RuleSchema>;
export type EshRuleInput = z.input<typeof RuleSchema>;

export interface RuleProblem {
  file: string;
  line: number;
  reason: string;
}

/** E3: compiles a pattern, or returns why RE2 refuses it. */
export function compilePattern(pattern: string): RE2JS | string {
  try {
    return RE2JS.compile(pattern);
  } catch (e) {
    const msg = (e as Error).message.replace(/^error parsing regexp: /, "");
    const hint = /\\[1-9]/.test(pattern)
      ? " (backreferences need backtracking; RE2 is linear-time)"
      : /\(\?<?[=!]/.test(pattern)
        ? " (lookaround needs backtracking; RE2 is linear-time)"
        : "";
    return `E3: pattern does not compile with RE2: ${msg}${hint}`;
  }
}

export interface ParsedRule extends EshRule {
  file: string;
  line: number;
}

/**
 * Parses every rule file of a package (name → text). Returns the rules, or
 * the first problem with its file and line (1-based).
 */
export function parseRuleFiles(
  files: readonly { name: string; text: string }[],
): { ok: true; rules: ParsedRule[] } | { ok: false; problem: RuleProblem } {
  const rules: ParsedRule[] = [];
  const seen = new Map<string, string>();
  for (const { name, text } of files) {
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const raw = lines[i]!.trim();
      if (raw === "" || raw.startsWith("#")) continue;
      const at = { file: name, line: i + 1 };
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch (e) {
        return { ok: false, problem: { ...at, reason: `E1: not a JSON object: ${(e as Error).message}` } };
      }
      const r = RuleSchema.safeParse(json);
      if (!r.success) {
        const issue = r.error.issues[0]!;
        const where = issue.path.join(".") || "(rule)";
        return { ok: false, problem: { ...at, reason: `E1: ${where}: ${issue.message}` } };
      }
      const prev = seen.get(r.data.id);
      if (prev)
        return {
          ok: false,
          problem: { ...at, reason: `E2: rule id ${r.data.id} already defined at ${prev}` },
        };
      seen.set(r.data.id, `${name}:${i + 1}`);
      const re = compilePattern(r.data.pattern);
      if (typeof re === "string") return { ok: false, problem: { ...at, reason: `${r.data.id}: ${re}` } };
      rules.push({ ...r.data, ...at });
      if (rules.length > MAX_RULES)
        return { ok: false, problem: { ...at, reason: `E6: more than ${MAX_RULES} rules` } };
    }
  }
  if (rules.length === 0)
    return { ok: false, problem: { file: files[0]?.name ?? "(package)", line: 0, reason: "E1: no rules" } };
  return { ok: true, rules };
}

/** The rule files of a payload: every `*.jsonl`, in name order. */
export function ruleFileNames(files: readonly string[]): string[] {
  return files.filter((f) => f.endsWith(".jsonl")).sort();
}
