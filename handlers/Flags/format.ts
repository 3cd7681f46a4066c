/**
 * The Flags Supplement (docs/policy.md, "Flags"): for ranges of agent
 * versions, the features that release ships and whether each is
 * `available` (the Flags Service may turn it on) or `off` (it may not).
 *
 *   { "schema": 1,
 *     "releases": [
 *       { "agentVersions": ">=0.1.0 <0.2.0",
 *         "flags": { "onAccessBlock": "available", "mlLive": "off" } } ] }
 *
 * Checks, each with its rule id:
 *   L1 JSON with the schema below (error names file and line)
 *   L2 every range is a list of comparators (>=, >, <=, <, =) on x.y.z
 *   L3 exactly one release covers this agent's version — a supplement for
 *      another agent version is refused, not half-applied
 */

import { FLAG_NAME_RE } from "../../core/effective/flags.ts";
import { HandlerError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export const FLAGS_FILE = "flags.json";

const RANGE_RE = /^\s*(?:(>=|<=|>|<|=)?\s*\d+\.\d+\.\d+\s*)+$/;

export const SupplementSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    releases: z
      .array(
        z.strictObject({
          agentVersions: z
            .string()
            .check(
              z.minLength(1),
              z.maxLength(200),
              z.regex(RANGE_RE, 'a version range such as ">=0.1.0 <0.2.0" (L2)'),
            ),
          flags: z.record(
            z.string().check(z.regex(FLAG_NAME_RE, "a flag name: lowerCamelCase, at most 64 characters")),
            z.enum(["off", "available"]),
          ),
        }),
      )
      .check(z.minLength(1), z.maxLength(100)),
  }),
);
export type Supplement = z.infer<typeof SupplementSchema>;

type Triple = [number, number, number];

/** x.y.z of a version string; pre-release and build suffixes are ignored (0.1.0-dev is 0.1.0). */
export function versionTriple(v: string): Triple | null {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

const cmp = (a: Triple, b: Triple) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** L2: does `range` (space-separated comparators, all must hold) cover `version`? */
export function inRange(range: string, version: string): boolean {
  const v = versionTriple(version);
  if (!v) return false;
  for (const m of range.matchAll(/(>=|<=|>|<|=)?\s*(\d+\.\d+\.\d+)/g)) {
    const op = m[1] ?? "=";
    const c = cmp(v, versionTriple(m[2]!)!);
    const ok =
      op === ">=" ? c >= 0 : op === ">" ? c > 0 : op === "<=" ? c <= 0 : op === "<" ? c < 0 : c === 0;
    if (!ok) return false;
  }
  return true;
}

const lineOf = (text: string, needle: RegExp, nth = 0): number | undefined => {
  const all = [...text.matchAll(needle)];
  const m = all[nth];
  return m ? text.slice(0, m.index).split("\n").length : undefined;
};

const fail = (code: string, file: string, line: number | undefined, msg: string) =>
  new HandlerError(code, `${file}${line ? `:${line}` : ""}: ${msg}`, { file, details: line ? { line } : {} });

/** L1–L3: the flags this agent version gets from the supplement. */
export function parseSupplement(
  text: string,
  file: string,
  agentVersion: string,
): { flags: Record<string, "off" | "available">; release: number } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail("FLAG_SYNTAX", file, undefined, `not valid JSON: ${(e as Error).message} (L1)`);
  }
  const r = SupplementSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const idx = issue.path[0] === "releases" && typeof issue.path[1] === "number" ? issue.path[1] : undefined;
    throw fail(
      "FLAG_INVALID",
      file,
      idx !== undefined ? lineOf(text, /"agentVersions"/g, idx) : undefined,
      `${issue.path.join(".") || "(root)"}: ${issue.message} (L1)`,
    );
  }
  const hits = r.data.releases
    .map((rel, i) => ({ rel, i }))
    .filter(({ rel }) => inRange(rel.agentVersions, agentVersion));
  if (hits.length === 0) {
    throw fail(
      "FLAG_VERSION_MISMATCH",
      file,
      lineOf(text, /"agentVersions"/g),
      `no release covers agent version ${agentVersion} (ranges: ${r.data.releases.map((x) => x.agentVersions).join("; ")}) (L3)`,
    );
  }
  if (hits.length > 1) {
    throw fail(
      "FLAG_AMBIGUOUS_RANGE",
      file,
      lineOf(text, /"agentVersions"/g, hits[1]!.i),
      `agent version ${agentVersion} is covered by ${hits.length} releases (${hits.map((h) => h.rel.agentVersions).join("; ")}) (L3)`,
    );
  }
  return { flags: hits[0]!.rel.flags, release: hits[0]!.i };
}
