/**
 * RemapperRules rule files (docs/policy.md): JSON, one file per concern,
 * each naming the policy document it reads, and per rule an XPath 1.0
 * query, one conversion from a closed set, and the config key it sets.
 *
 *   {
 *     "schema": 1,
 *     "document": "threat-protection.xml",
 *     "rules": [
 *       { "id": "lp-lookups", "select": "/policy/liveProtection/@enabled",
 *         "convert": { "fn": "bool" }, "target": "liveProtection.lookups" }
 *     ]
 *   }
 *
 * Checked here, when a package arrives, each with its rule id:
 *   M1 JSON, with the schema below (error names file and line)
 *   M2 every `select` compiles as XPath 1.0
 *   M3 every `target` passes the allow-list (core/effective/allow-list.ts)
 *   M4 rule ids and targets are unique within a file
 */

import { checkPolicyKey } from "../../core/effective/allow-list.ts";
import { DOCUMENT_NAME_RE } from "../../core/effective/bundle.ts";
import { HandlerError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { compileXPath } from "./xpath.ts";

const Scalar = lazySchema(() => z.union([z.string().check(z.maxLength(1024)), z.number(), z.boolean()]));

export const ConvertSchema = lazySchema(() =>
  z.discriminatedUnion("fn", [
    z.strictObject({ fn: z.literal("bool") }),
    z
      .strictObject({ fn: z.literal("int"), min: z.int(), max: z.int() })
      .check(z.refine((c) => c.min <= c.max, "min must not exceed max")),
    z.strictObject({
      fn: z.literal("enum"),
      /** Policy text → config value; anything not listed is an error. */
      map: z
        .record(z.string().check(z.maxLength(256)), Scalar)
        .check(z.refine((m) => Object.keys(m).length > 0, "map is empty")),
    }),
    z.strictObject({
      fn: z.literal("duration"),
      /** Unit of the config value; policy text may say 250ms, 30s, 5m, 2h, 1d, or a bare number in this unit. */
      unit: z.enum(["ms", "s"]),
      min: z.optional(z.number().check(z.gte(0))),
      max: z.optional(z.number().check(z.gte(0))),
    }),
    z.strictObject({
      fn: z.literal("list"),
      /** Splits each matched text on this separator (one item per node when several nodes match). */
      separator: z._default(z.string().check(z.minLength(1), z.maxLength(8)), ","),
      item: z._default(z.enum(["string", "path"]), "string"),
      maxItems: z._default(z.int().check(z.gte(1), z.lte(10_000)), 1000),
    }),
    z.strictObject({ fn: z.literal("path") }),
  ]),
);
export type Convert = z.infer<typeof ConvertSchema>;

export const RuleSchema = lazySchema(() =>
  z.strictObject({
    id: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)),
    select: z.string().check(z.minLength(1), z.maxLength(4096)),
    convert: ConvertSchema,
    target: z.string().check(z.minLength(1), z.maxLength(200)),
    /** When the query matches nothing: false (default) fails the file; true leaves the key alone. */
    optional: z._default(z.boolean(), false),
  }),
);
export type Rule = z.infer<typeof RuleSchema>;

export const RuleFileSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    description: z.optional(z.string().check(z.maxLength(1000))),
    document: z.string().check(z.regex(DOCUMENT_NAME_RE, "a policy document name ending in .xml")),
    rules: z.array(RuleSchema).check(z.minLength(1), z.maxLength(1000)),
  }),
);
export type RuleFile = z.infer<typeof RuleFileSchema>;

export interface ParsedRuleFile extends RuleFile {
  file: string;
  /** Rule id → its line in the rule file (for error messages). */
  lines: Record<string, number>;
}

const fail = (code: string, file: string, line: number | undefined, msg: string, rule?: string) =>
  new HandlerError(code, `${file}${line ? `:${line}` : ""}: ${msg}`, {
    file,
    details: { ...(line ? { line } : {}), ...(rule ? { rule } : {}) },
  });

/**
 * Line of a JSON syntax error. JSON.parse gives no position, but it gives
 * the same message for the first prefix (by line) that already contains the
 * offending token, and an "ended early" message for shorter ones.
 */
function jsonErrorLine(text: string, message: string): number | undefined {
  const lines = text.split("\n");
  if (lines.length > 5000) return undefined;
  let prefix = "";
  for (let i = 0; i < lines.length; i++) {
    prefix += `${lines[i]}\n`;
    try {
      JSON.parse(prefix);
    } catch (e) {
      if ((e as Error).message === message) return i + 1;
    }
  }
  return undefined;
}

function ruleLines(text: string): { ids: Record<string, number>; byIndex: number[] } {
  const ids: Record<string, number> = {};
  const byIndex: number[] = [];
  const re = /"id"\s*:\s*"((?:[^"\\]|\\.)*)"/g;
  for (const m of text.matchAll(re)) {
    const line = text.slice(0, m.index).split("\n").length;
    ids[m[1]!] ??= line;
    byIndex.push(line);
  }
  return { ids, byIndex };
}

/** M1–M4. */
export function parseRuleFile(text: string, file: string): ParsedRuleFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail(
      "POL_RULES_SYNTAX",
      file,
      jsonErrorLine(text, (e as Error).message),
      `not valid JSON: ${(e as Error).message} (M1)`,
    );
  }
  const { ids, byIndex } = ruleLines(text);
  const r = RuleFileSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const idx = issue.path[0] === "rules" && typeof issue.path[1] === "number" ? issue.path[1] : undefined;
    throw fail(
      "POL_RULES_INVALID",
      file,
      idx !== undefined ? byIndex[idx] : undefined,
      `${issue.path.join(".") || "(root)"}: ${issue.message} (M1)`,
    );
  }
  const seen = new Set<string>();
  const targets = new Set<string>();
  for (const rule of r.data.rules) {
    const line = ids[rule.id];
    if (seen.has(rule.id))
      throw fail("POL_RULES_INVALID", file, line, `rule id ${rule.id} appears twice (M4)`, rule.id);
    try {
      compileXPath(rule.select);
      seen.add(rule.id);
    } catch (e) {
      throw fail(
        "POL_BAD_XPATH",
        file,
        line,
        `rule ${rule.id}: "${rule.select}" is not XPath 1.0: ${(e as Error).message} (M2)`,
        rule.id,
      );
    }
    const verdict = checkPolicyKey(rule.target);
    if (!verdict.ok) throw fail(verdict.code, file, line, `rule ${rule.id}: ${verdict.reason} (M3)`, rule.id);
    if (targets.has(rule.target))
      throw fail(
        "POL_DUPLICATE_TARGET",
        file,
        line,
        `rule ${rule.id}: ${rule.target} is already set by another rule in this file (M4)`,
        rule.id,
      );
    targets.add(rule.target);
  }
  return { ...r.data, file, lines: ids };
}
