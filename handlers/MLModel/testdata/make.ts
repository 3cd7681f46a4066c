/** Rebuilds the bad-model fixtures from their AssemblyScript sources: `bun handlers/MLModel/testdata/make.ts`. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { compileAssemblyScript } from "../build.ts";

const dir = import.meta.dir;
const fixtures: [name: string, maxPages: number | null][] = [
  ["loop", 16],
  ["grow", 16],
  ["grow-unbounded", null],
  ["import", 16],
  ["trap-big", 16],
];
for (const [name, pages] of fixtures) {
  const src = join(dir, `${name.replace("-unbounded", "")}.as`);
  writeFileSync(join(dir, `${name}.wasm`), await compileAssemblyScript(src, pages));
}
