/**
 * The effective configuration, as a pure function: agent.json (with the
 * schema's defaults) + one policy overlay per rule file → the config every
 * feature sees, and where each value came from. No I/O here; the service
 * (service.ts) feeds it and persists what it returns.
 *
 * Per-file atomicity (the seed's RemapperRules sentence) lives here: an
 * overlay is applied whole or not at all. For each rule file the resolver
 * tries the file's new output first and, if that is refused (a forbidden key,
 * or a value the agent's schema refuses), the output it accepted last time —
 * so a failing file keeps its previous settings and never blocks another.
 */
import { type AgentConfig, parseAgentConfig, safeParseAgentConfig } from "../config.ts";
import { checkPolicyKey } from "./allow-list.ts";

export interface OverlayValue {
  key: string;
  value: unknown;
  /** Rule id inside the rule file. */
  rule: string;
  /** Policy document the value was read from. */
  document: string;
  /** Line of the matched node in that document. */
  line?: number;
}

/** One rule file's output: all of it applies, or none of it. */
export interface Overlay {
  file: string;
  /** Version of the RemapperRules content that produced it. */
  contentVersion?: number;
  values: OverlayValue[];
}

export interface OverlayCandidate {
  file: string;
  /** This run's output; absent when the rule file failed in the handler. */
  next?: Overlay;
  /** What was accepted for this file last time; kept when `next` is missing or refused. */
  previous?: Overlay;
}

export type Origin =
  | { source: "default" }
  | { source: "agent.json"; file?: string }
  | { source: "policy"; file: string; rule: string; document: string; line?: number }
  /** A feature gate replaced the wanted value because its flag is off (gates.ts). */
  | { source: "flag"; flag: string; wanted: unknown; wantedOrigin?: Origin };

export interface Refusal {
  file: string;
  code: string;
  message: string;
  rule?: string;
  key?: string;
}

export interface Resolution {
  config: AgentConfig;
  /** Flattened key (dots) → its value in `config`. */
  values: Record<string, unknown>;
  origins: Record<string, Origin>;
  /** Per file, the overlay now in force (next, previous, or none). */
  accepted: Overlay[];
  /** Which overlay is in force per file: "next", "previous" (kept after a refusal), or none. */
  used: Record<string, "next" | "previous" | "none">;
  refusals: Refusal[];
}

export interface BaseConfig {
  /** agent.json as written plus command-line overrides (before defaults). */
  input: Record<string, unknown>;
  file?: string;
  /** Keys the administrator set; default: every leaf of `input`. */
  explicit?: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);

/** Leaves of a config object as dotted keys; arrays are leaves. */
export function flatten(value: unknown, prefix = "", out: Obj = {}): Obj {
  if (isObj(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

function setPath(target: Obj, key: string, value: unknown): void {
  const parts = key.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isObj(node[part])) node[part] = {};
    node = node[part] as Obj;
  }
  node[parts[parts.length - 1]!] = value;
}

const clone = <T>(v: T): T => structuredClone(v);

/** R-atomic: checks one overlay on top of `input`; returns the merged input or why not. */
function tryOverlay(
  input: Obj,
  overlay: Overlay,
): { ok: true; input: Obj } | { ok: false; refusal: Refusal } {
  const seen = new Set<string>();
  const merged = clone(input);
  for (const v of overlay.values) {
    const verdict = checkPolicyKey(v.key);
    if (!verdict.ok) {
      return {
        ok: false,
        refusal: {
          file: overlay.file,
          code: verdict.code,
          message: verdict.reason,
          rule: v.rule,
          key: v.key,
        },
      };
    }
    if (seen.has(v.key)) {
      return {
        ok: false,
        refusal: {
          file: overlay.file,
          code: "POL_DUPLICATE_TARGET",
          message: `${overlay.file}: ${v.key} is set by more than one rule (second: ${v.rule})`,
          rule: v.rule,
          key: v.key,
        },
      };
    }
    seen.add(v.key);
    setPath(merged, v.key, v.value);
  }
  const parsed = safeParseAgentConfig(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join(".") ?? "";
    const culprit = overlay.values.find(
      (v) => key === v.key || key.startsWith(`${v.key}.`) || v.key.startsWith(`${key}.`),
    );
    return {
      ok: false,
      refusal: {
        file: overlay.file,
        code: "POL_VALUE_REFUSED",
        message: `${overlay.file}: ${key || "(root)"}: ${issue?.message ?? "invalid"}${culprit ? ` (rule ${culprit.rule})` : ""}`,
        ...(culprit ? { rule: culprit.rule, key: culprit.key } : {}),
      },
    };
  }
  return { ok: true, input: merged };
}

/**
 * Applies the overlays in file-name order (a later file wins a key two files
 * set; the origin says which) and returns the effective config.
 */
export function resolveEffective(base: BaseConfig, candidates: OverlayCandidate[]): Resolution {
  let input = clone(base.input);
  const accepted: Overlay[] = [];
  const used: Resolution["used"] = {};
  const refusals: Refusal[] = [];
  const sorted = [...candidates].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  for (const c of sorted) {
    used[c.file] = "none";
    for (const [which, overlay] of [
      ["next", c.next],
      ["previous", c.previous],
    ] as const) {
      if (!overlay) continue;
      const r = tryOverlay(input, overlay);
      if (r.ok) {
        input = r.input;
        accepted.push(overlay);
        used[c.file] = which;
        break;
      }
      refusals.push({
        ...r.refusal,
        message: which === "previous" ? `previous values dropped: ${r.refusal.message}` : r.refusal.message,
      });
    }
  }
  const config = parseAgentConfig(input);
  const values = flatten(config);
  const fromFile = new Set(base.explicit ?? Object.keys(flatten(base.input)));
  const origins: Record<string, Origin> = {};
  for (const key of Object.keys(values)) {
    origins[key] = fromFile.has(key)
      ? { source: "agent.json", ...(base.file ? { file: base.file } : {}) }
      : { source: "default" };
  }
  for (const o of accepted) {
    for (const v of o.values) {
      for (const key of Object.keys(values)) {
        if (key === v.key || key.startsWith(`${v.key}.`)) {
          origins[key] = {
            source: "policy",
            file: o.file,
            rule: v.rule,
            document: v.document,
            ...(v.line !== undefined ? { line: v.line } : {}),
          };
        }
      }
    }
  }
  return { config, values, origins, accepted, used, refusals };
}

/** Keys whose value differs between two flattened configs (added, removed or changed). */
export function changedKeys(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}
