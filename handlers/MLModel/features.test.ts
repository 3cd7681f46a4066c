/** Feature extraction v1: scaled to [0, 1] on real and synthetic objects, kinds and structure recognised. */
import { expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { extractV1, FEATURES_V1 } from "./features.ts";
import { syntheticCorpus } from "./synthetic.ts";

const ROOT = join(import.meta.dir, "../..");
function head(path: string, n: number): Uint8Array {
  const b = new Uint8Array(n);
  const fd = openSync(path, "r");
  try {
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}
const objects: Uint8Array[] = [
  new Uint8Array(0),
  new Uint8Array([0x23, 0x21]),
  new Uint8Array(readFileSync(join(ROOT, "README.md"))),
  new Uint8Array(readFileSync(join(import.meta.dir, "testdata", "loop.wasm"))),
  // An ELF from this machine: the runtime executing this test.
  head(process.execPath, 3 * 1024 * 1024 + 123),
  ...syntheticCorpus(9, 77).map((s) => s.bytes),
];

test("features are scaled to [0, 1] and recognise the object's kind", () => {
  const [elf, pe, sh] = syntheticCorpus(3, 5).map((s) => extractV1(s.bytes));
  const at = (name: string) => FEATURES_V1.indexOf(name as never);
  expect([elf![at("kind_elf")], pe![at("kind_pe")], sh![at("kind_script")]]).toEqual([1, 1, 1]);
  expect(elf![at("exe_wx")]).toBe(1);
  expect(sh![at("str_suspicious")]).toBeGreaterThan(0);
  for (const d of objects) for (const v of extractV1(d)) expect(v >= 0 && v <= 1).toBe(true);
});
