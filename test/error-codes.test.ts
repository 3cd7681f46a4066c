import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { collectCodes, DOC_PATH, renderDoc } from "../scripts/error-codes.ts";

test("docs/error-codes.md lists every error code raised in the source (run `bun scripts/error-codes.ts`)", () => {
  const codes = collectCodes();
  // The attack suite and the docs rely on these; if the scan stops finding them, the scan is broken.
  for (const c of ["UPD_HASH_MISMATCH", "IDX_SERIAL_ROLLBACK", "SIG_UNTRUSTED_CHAIN", "PKG_TAR_TRAVERSAL"]) {
    expect(codes.has(c)).toBe(true);
  }
  expect(readFileSync(DOC_PATH, "utf8")).toBe(renderDoc(codes));
});
