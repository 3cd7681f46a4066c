/** docs/queries.md's table list and pack coverage are the generated ones (run `bun scripts/query-tables.ts`). */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { DOC, renderDoc } from "../scripts/query-tables.ts";

test(
  "docs/queries.md lists every table of the registry and the current pack coverage",
  () => {
    const doc = readFileSync(DOC, "utf8");
    expect(doc).toBe(renderDoc(doc));
  },
  { timeout: 60_000 },
);
