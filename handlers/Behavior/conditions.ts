/**
 * Per-subscription conditions: cheap field predicates a rule declares in
 * `on(type, { exe_in = {...}, cmdline_contains = {...} }, fn)` and the
 * engine evaluates in TypeScript before an event crosses into Lua. Most
 * events of a type concern no rule; calling every reactor to let it say
 * "not mine" was most of the Behavior engine's cost.
 *
 *   <field> = v                 the field equals v (a string, number or boolean)
 *   <field>_in = { v, ... }     the field equals one of the values
 *   <field>_prefix = s | {...}  the field starts with s (any of the list)
 *   <field>_suffix = s | {...}  the field ends with s (any of the list)
 *   <field>_contains = s | {...} the field contains s (any of the list)
 *
 * Several conditions on one subscription must all hold. A condition on a
 * field the event lacks fails. Conditions are a pre-filter, not the rule:
 * the reactor keeps its own checks, and `agent rules test` proves that the
 * detections are the same with and without them (conditions may let through
 * events the reactor then ignores, never hold back one it would detect on).
 *
 * Matching is deliberately loose across kinds so that it errs on the side
 * of delivering: a number matches a string holding the same number and vice
 * versa (a rule may compare either way, or call tonumber()).
 */

import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { FieldValue, FlatEvent } from "./codec.ts";

/** Fields a condition may name: the ones whose tests are what most rules begin with. */
export const CONDITION_FIELDS = [
  "exe",
  "name",
  "path",
  "cmdline",
  "key",
  "value",
  "remote",
  "rport",
  "lport",
  "uid",
] as const;
export type ConditionField = (typeof CONDITION_FIELDS)[number];
export const CONDITION_OPS = ["", "_in", "_prefix", "_suffix", "_contains"] as const;
type Op = (typeof CONDITION_OPS)[number];

/** A condition list longer than this belongs in the rule (or a ProductRulesFeed table), not the pre-filter. */
export const MAX_CONDITION_VALUES = 1024;
const MAX_NEEDLE = 4096;

const Scalar = lazySchema(() =>
  z.union([z.string().check(z.maxLength(MAX_NEEDLE)), z.number(), z.boolean()]),
);
const Needles = lazySchema(() =>
  z.union([
    z.string().check(z.minLength(1), z.maxLength(MAX_NEEDLE)),
    z
      .array(z.string().check(z.minLength(1), z.maxLength(MAX_NEEDLE)))
      .check(z.minLength(1), z.maxLength(MAX_CONDITION_VALUES)),
  ]),
);

const shape: Record<string, z.ZodMiniType> = {};
for (const f of CONDITION_FIELDS) {
  shape[f] = z.optional(Scalar);
  shape[`${f}_in`] = z.optional(z.array(Scalar).check(z.minLength(1), z.maxLength(MAX_CONDITION_VALUES)));
  shape[`${f}_prefix`] = z.optional(Needles);
  shape[`${f}_suffix`] = z.optional(Needles);
  shape[`${f}_contains`] = z.optional(Needles);
}
/** The condition keys of an `on()` options table (validated at load; a typo is a load error, not a silent no-op). */
export const ConditionsSchema = lazySchema(() => z.strictObject(shape));
export const CONDITION_KEYS: ReadonlySet<string> = new Set(Object.keys(shape));

export type Conditions = Partial<Record<string, FieldValue | FieldValue[] | string | string[]>>;
export type Predicate = (event: FlatEvent) => boolean;

function parseKey(key: string): { field: ConditionField; op: Op } {
  for (const op of CONDITION_OPS) {
    if (op === "") continue;
    if (key.endsWith(op)) return { field: key.slice(0, -op.length) as ConditionField, op };
  }
  return { field: key as ConditionField, op: "" };
}

/** The value as text, the way Lua's tostring would show a string, integer or boolean. */
function text(v: FieldValue | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  return typeof v === "string" ? v : String(v);
}

/** Equality that errs on delivering: "4444" matches 4444 and 4444 matches "4444". */
function inSet(values: FieldValue[]): (v: FieldValue | null | undefined) => boolean {
  const set = new Set<FieldValue>();
  for (const x of values) {
    set.add(x);
    if (typeof x === "number") set.add(String(x));
    else if (typeof x === "string" && x.trim() !== "" && Number.isFinite(Number(x))) set.add(Number(x));
  }
  return (v) => {
    if (v === null || v === undefined) return false;
    if (set.has(v)) return true;
    if (typeof v === "string") {
      const n = v.trim() === "" ? Number.NaN : Number(v);
      return Number.isFinite(n) && set.has(n);
    }
    return typeof v === "number" && set.has(String(v));
  };
}

function needles(v: unknown): string[] {
  return typeof v === "string" ? [v] : (v as string[]);
}

function compileOne(key: string, value: unknown): Predicate {
  const { field, op } = parseKey(key);
  switch (op) {
    case "": {
      const eq = inSet([value as FieldValue]);
      return (e) => eq(e[field]);
    }
    case "_in": {
      const eq = inSet(value as FieldValue[]);
      return (e) => eq(e[field]);
    }
    case "_prefix": {
      const list = needles(value);
      return (e) => {
        const s = text(e[field]);
        if (s === null) return false;
        for (let i = 0; i < list.length; i++) if (s.startsWith(list[i]!)) return true;
        return false;
      };
    }
    case "_suffix": {
      const list = needles(value);
      return (e) => {
        const s = text(e[field]);
        if (s === null) return false;
        for (let i = 0; i < list.length; i++) if (s.endsWith(list[i]!)) return true;
        return false;
      };
    }
    case "_contains": {
      const list = needles(value);
      return (e) => {
        const s = text(e[field]);
        if (s === null) return false;
        for (let i = 0; i < list.length; i++) if (s.includes(list[i]!)) return true;
        return false;
      };
    }
  }
}

/** One predicate for all of a subscription's conditions (all must hold); null when it declares none. */
export function compileConditions(conditions: Conditions): Predicate | null {
  const preds = Object.entries(conditions)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => compileOne(k, v));
  if (preds.length === 0) return null;
  if (preds.length === 1) return preds[0]!;
  return (e) => {
    for (let i = 0; i < preds.length; i++) if (!preds[i]!(e)) return false;
    return true;
  };
}

/** The event fields the conditions read. */
export function conditionFields(conditions: Conditions): Set<string> {
  return new Set(
    Object.entries(conditions)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => parseKey(k).field),
  );
}
