/**
 * Draws the layering rule table (test/layering-rules.ts: LAYERS and
 * TYPE_DEPENDENCIES) into README.md "Layering", between its markers, so the
 * drawing can never name fewer (or other) allowed imports than the test
 * enforces. test/layering.test.ts fails when the README's drawing is not
 * this one.
 *
 *   bun scripts/layering-readme.ts      # rewrite the drawing in README.md
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LAYERS, type Layer, TYPE_DEPENDENCIES } from "../test/layering-rules.ts";

export const README_PATH = join(import.meta.dir, "..", "README.md");
export const BEGIN =
  "<!-- layering:begin (generated from test/layering-rules.ts: bun scripts/layering-readme.ts) -->";
export const END = "<!-- layering:end -->";

/** A layer's short name in "may import" lists: the first folder it names. */
function short(layer: Layer): string {
  return LAYERS.find((l) => l.layer === layer)!.folders.split(" · ")[0]!;
}

const typeName = (unit: string) => unit.replace(/^handlers\//, "");

/** The drawing, top layer first, with each layer's allowed imports and the declared type → type imports. */
export function renderLayering(): string {
  const width = Math.max(...LAYERS.map((l) => l.folders.length)) + 3;
  const lines: string[] = [];
  for (const [i, l] of LAYERS.entries()) {
    const last = i === LAYERS.length - 1;
    const bar = last ? " " : "│";
    lines.push(` ${l.folders.padEnd(width)}${l.why}`);
    const below = LAYERS.slice(i + 1).map((b) => b.layer);
    const others = l.mayImport.filter((m) => m !== l.layer);
    const everyBelow = below.length > 1 && below.every((b) => others.includes(b));
    const list = [
      ...(l.mayImport.includes(l.layer) ? ["each other"] : []),
      ...(everyBelow ? ["every layer below"] : others.map(short)),
    ];
    const text =
      list.length === 0
        ? "nothing but its own folder"
        : list.length === 1 && list[0] === "each other"
          ? "each other only"
          : list.join(", ");
    lines.push(`   ${bar}   may import: ${text}`);
    if (l.layer === "types") {
      const pairs = Object.entries(TYPE_DEPENDENCIES).flatMap(([from, tos]) =>
        tos.map((to) => `${typeName(from)} → ${typeName(to)}`),
      );
      lines.push(`   ${bar}   other types, only these (L2): ${pairs.join(" · ")}`);
    }
    if (!last) lines.push("   ▼");
  }
  return `${BEGIN}\n\`\`\`\n${lines.join("\n")}\n\`\`\`\n${END}`;
}

/** The README with its drawing replaced by the current one. */
export function withDrawing(readme: string): string {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error("README.md: layering markers missing");
  return readme.slice(0, a) + renderLayering() + readme.slice(b + END.length);
}

if (import.meta.main) {
  writeFileSync(README_PATH, withDrawing(readFileSync(README_PATH, "utf8")));
  console.log(`README.md: layering drawing of ${LAYERS.length} layers rewritten`);
}
