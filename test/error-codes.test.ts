import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { EXIT, EXIT_MEANING, EXIT_RULES, exitCodeFor, exitCodeForCode } from "../core/cli/exit-codes.ts";
import { OutpostError } from "../core/errors.ts";
import {
  CLI_DOC_PATH,
  collectCodes,
  DOC_PATH,
  renderCliDoc,
  renderDoc,
  renderExitTable,
} from "../scripts/error-codes.ts";

test("docs/error-codes.md lists every error code raised in the source (run `bun scripts/error-codes.ts`)", () => {
  const codes = collectCodes();
  // The attack suite and the docs rely on these; if the scan stops finding them, the scan is broken.
  for (const c of ["UPD_HASH_MISMATCH", "IDX_SERIAL_ROLLBACK", "SIG_UNTRUSTED_CHAIN", "PKG_TAR_TRAVERSAL"]) {
    expect(codes.has(c)).toBe(true);
  }
  expect(readFileSync(DOC_PATH, "utf8")).toBe(renderDoc(codes));
});

describe("exit codes: one table (core/cli/exit-codes.ts), both documents generated from it", () => {
  test("docs/cli.md's exit-code section is the generated one (run `bun scripts/error-codes.ts`)", () => {
    const doc = readFileSync(CLI_DOC_PATH, "utf8");
    expect(doc).toContain(renderExitTable());
    expect(renderCliDoc(doc)).toBe(doc);
  });

  test("docs/error-codes.md states, for every code, the exit code the CLI really gives", () => {
    const doc = readFileSync(DOC_PATH, "utf8");
    const rows = [...doc.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| (\d) \|/gm)];
    expect(rows.length).toBe(collectCodes().size);
    for (const [, code, exit] of rows) {
      expect({ code, exit: Number(exit) }).toEqual({ code, exit: exitCodeFor(new OutpostError(code!, "x")) });
    }
  });

  test("the codes the three old tables disagreed on have one answer", () => {
    // Were: REL_* 3 in code, 2 in the family table; FLEET_* and LAKE_* 5 vs 2; AGENT_LOCKED 4 vs 2;
    // CTL_UNAUTHORIZED 5 vs 4. The CLI's behaviour is kept; the documents now follow it.
    expect(exitCodeForCode("REL_STAGED_CHANGED")).toBe(EXIT.CONTENT);
    expect(exitCodeForCode("FLEET_INVALID")).toBe(EXIT.INTERNAL);
    expect(exitCodeForCode("LAKE_BAD_BODY")).toBe(EXIT.INTERNAL);
    expect(exitCodeForCode("AGENT_LOCKED")).toBe(EXIT.UNREACHABLE);
    expect(exitCodeForCode("CTL_UNAUTHORIZED")).toBe(EXIT.INTERNAL);
    expect(exitCodeForCode("CTL_NOT_RUNNING")).toBe(EXIT.UNREACHABLE);
  });

  test("every rule is reached by a code the source raises, and every exit code has a meaning", () => {
    const codes = [...collectCodes().keys()];
    for (const rule of EXIT_RULES) {
      const hits = codes.filter((c) =>
        Array.isArray(rule.match) ? rule.match.includes(c) : (rule.match as RegExp).test(c),
      );
      expect({ rule: String(rule.match), reached: hits.length > 0 }).toEqual({
        rule: String(rule.match),
        reached: true,
      });
    }
    for (const exit of Object.values(EXIT)) expect(EXIT_MEANING[exit]).toBeTruthy();
  });

  test("the first matching rule wins: an exact code before its family's pattern", () => {
    expect(exitCodeForCode("HND_UNKNOWN_TYPE")).toBe(EXIT.USAGE);
    expect(exitCodeForCode("HND_HMPA_BAD_ARGS")).toBe(EXIT.USAGE);
    expect(exitCodeForCode("HND_NOT_LOADED")).toBe(EXIT.CONTENT);
    expect(exitCodeForCode("NOT_A_FAMILY")).toBe(EXIT.INTERNAL);
  });
});
