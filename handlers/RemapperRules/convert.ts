/**
 * The closed set of conversion functions a rule may apply to the text its
 * XPath query matched (docs/policy.md, "Conversions"). Each is pure, takes
 * the matched strings, and returns a config value or throws a
 * ConversionError saying what was wrong with the input — never a guess.
 */
import { isAbsolute, normalize } from "node:path";
import type { Convert } from "./format.ts";

export class ConversionError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TRUE = new Set(["true", "1", "yes", "on", "enabled"]);
const FALSE = new Set(["false", "0", "no", "off", "disabled"]);
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function single(texts: string[], fn: string): string {
  if (texts.length !== 1) {
    throw new ConversionError(
      "POL_XPATH_AMBIGUOUS",
      `${fn} needs exactly one match, the query matched ${texts.length}`,
    );
  }
  return texts[0]!.trim();
}

function checkPath(p: string): string {
  if (p.includes("\0") || !isAbsolute(p))
    throw new ConversionError("POL_CONVERT_FAILED", `path "${p}" is not absolute`);
  if (p.split("/").includes(".."))
    throw new ConversionError("POL_CONVERT_FAILED", `path "${p}" contains ".."`);
  return normalize(p);
}

export function convert(spec: Convert, texts: string[]): unknown {
  switch (spec.fn) {
    case "bool": {
      const t = single(texts, "bool").toLowerCase();
      if (TRUE.has(t)) return true;
      if (FALSE.has(t)) return false;
      throw new ConversionError(
        "POL_CONVERT_FAILED",
        `"${t}" is not a boolean (true/false, 1/0, yes/no, on/off, enabled/disabled)`,
      );
    }
    case "int": {
      const t = single(texts, "int");
      if (!/^[+-]?\d{1,15}$/.test(t))
        throw new ConversionError("POL_CONVERT_FAILED", `"${t}" is not an integer`);
      const n = Number(t);
      if (n < spec.min || n > spec.max) {
        throw new ConversionError("POL_VALUE_OUT_OF_RANGE", `${n} is outside ${spec.min}..${spec.max}`);
      }
      return n;
    }
    case "enum": {
      const t = single(texts, "enum");
      if (!Object.hasOwn(spec.map, t)) {
        throw new ConversionError(
          "POL_CONVERT_FAILED",
          `"${t}" is not one of ${Object.keys(spec.map).join(", ")}`,
        );
      }
      return spec.map[t];
    }
    case "duration": {
      const t = single(texts, "duration");
      const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(t);
      if (!m)
        throw new ConversionError(
          "POL_CONVERT_FAILED",
          `"${t}" is not a duration (e.g. 250ms, 30s, 5m, 2h, 1d)`,
        );
      const ms = Number(m[1]) * (m[2] ? UNIT_MS[m[2]]! : UNIT_MS[spec.unit]!);
      const value = spec.unit === "ms" ? Math.round(ms) : ms / 1000;
      if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) {
        throw new ConversionError(
          "POL_VALUE_OUT_OF_RANGE",
          `${t} = ${value} ${spec.unit} is outside ${spec.min ?? "0"}..${spec.max ?? "∞"} ${spec.unit}`,
        );
      }
      return value;
    }
    case "list": {
      const items = texts
        .flatMap((t) => t.split(spec.separator))
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
      if (items.length > spec.maxItems) {
        throw new ConversionError("POL_VALUE_OUT_OF_RANGE", `${items.length} items exceeds ${spec.maxItems}`);
      }
      return spec.item === "path" ? items.map(checkPath) : items;
    }
    case "path":
      return checkPath(single(texts, "path"));
  }
}
