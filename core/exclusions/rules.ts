/**
 * The refusal rules every exclusion passes before any feature honours it.
 * Pure and I/O-free (python-tuf ngclient style): the caller supplies the
 * paths the agent protects. Each refusal cites its rule:
 *
 *   X1  a path or process path is absolute and normal (no `.`/`..`, no `//`, no trailing `/`, no NUL)
 *   X2  nothing excludes `/` (it would switch protection off for the whole machine)
 *   X3  nothing excludes the agent's own binaries or state (path or process: the protected path
 *       itself, anything beneath it, or a directory above it)
 *   X4  a sha256 is 64 hex digits, and so is a signer: the SHA-256 of the signer certificate (what
 *       Authenticode verification and LocalRepData's signer list identify a signer by). A name is
 *       refused: anyone can issue a certificate with any name, a thumbprint names one key
 *   X5  a process name is printable, ≤ 256 characters
 *   X6  scopes are not repeated
 */
import { type Exclusion, type ExclusionInput, ExclusionInputSchema } from "../exclusions-config.ts";

export interface Refusal {
  rule: "X0" | "X1" | "X2" | "X3" | "X4" | "X5" | "X6";
  reason: string;
}

const SHA256_RE = /^[0-9a-fA-F]{64}$/;
const PRINTABLE_RE = /^[\x20-\x7e\u00a0-\uffff]{1,256}$/;

function normalPath(p: string): string | null {
  if (!p.startsWith("/") || p.includes("\0")) return "not an absolute path";
  if (p.length > 1 && p.endsWith("/")) return "ends with /";
  if (p.includes("//")) return "contains //";
  if (p.split("/").some((s) => s === "." || s === "..")) return "contains . or .. segments";
  return null;
}

/** True when `a` is `b` or a directory above it. */
function covers(a: string, b: string): boolean {
  return a === "/" || a === b || b.startsWith(`${a}/`);
}

/** Checks one proposed exclusion. Returns the normalised exclusion or the rule it breaks. */
export function checkExclusion(
  input: unknown,
  source: string,
  protectedPaths: readonly string[],
): { ok: Exclusion } | { refused: Refusal } {
  const parsed = ExclusionInputSchema.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return {
      refused: { rule: "X0", reason: `${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}` },
    };
  }
  const e = parsed.data;
  if (new Set(e.scope).size !== e.scope.length) return { refused: { rule: "X6", reason: "scope repeated" } };
  let value = e.value;
  const isPath = e.kind === "path" || (e.kind === "process" && value.startsWith("/"));
  if (isPath) {
    const bad = normalPath(value);
    if (bad) return { refused: { rule: "X1", reason: `${value}: ${bad}` } };
    if (value === "/")
      return { refused: { rule: "X2", reason: "excluding / would disable protection everywhere" } };
    const hit = protectedPaths.find((p) => covers(value, p) || covers(p, value));
    if (hit) return { refused: { rule: "X3", reason: `${value} covers the agent's own ${hit}` } };
  } else if (e.kind === "sha256" || e.kind === "signer") {
    if (!SHA256_RE.test(value)) {
      const what = e.kind === "sha256" ? "a SHA-256" : "a signer certificate's SHA-256";
      return { refused: { rule: "X4", reason: `${value.slice(0, 80)}: not ${what} (64 hex digits)` } };
    }
    value = value.toLowerCase();
  } else if (!PRINTABLE_RE.test(value)) {
    return {
      refused: {
        rule: "X5",
        reason: `${e.kind} ${JSON.stringify(value.slice(0, 40))}: not printable or too long`,
      },
    };
  }
  return { ok: { kind: e.kind, value, scope: [...e.scope].sort(), reason: e.reason, source } };
}

export type { ExclusionInput };
