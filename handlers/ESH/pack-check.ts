/** `contentctl pack --type ESH`: the rule files are checked (E1–E6) before anything is signed. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { parseRuleFiles, ruleFileNames } from "./rules.ts";

function walk(dir: string, base = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, base), { withFileTypes: true })) {
    const rel = base ? `${base}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, rel));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

export function checkEshSources(dir: string): void {
  const names = ruleFileNames(walk(dir));
  if (names.length === 0) {
    throw new HandlerError("HND_ESH_INVALID", `${dir}: no *.jsonl rule files`, { file: dir });
  }
  const r = parseRuleFiles(names.map((name) => ({ name, text: readFileSync(join(dir, name), "utf8") })));
  if (!r.ok) {
    const file = join(dir, r.problem.file);
    throw new HandlerError("HND_ESH_INVALID", `${file}:${r.problem.line}: ${r.problem.reason}`, {
      file,
      details: { line: r.problem.line, reason: r.problem.reason },
    });
  }
}
