import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atomicWriteFile, atomicWriteJson, removeStaleTempFiles } from "./fsutil.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-fsutil-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("atomic writes replace the file whole, with the requested mode, and leave no temp file", () => {
  const f = join(dir, "state.json");
  atomicWriteJson(f, { a: 1 }, 0o600);
  atomicWriteFile(f, "second");
  expect(readFileSync(f, "utf8")).toBe("second");
  atomicWriteJson(f, { b: 2 }, 0o600);
  expect(JSON.parse(readFileSync(f, "utf8"))).toEqual({ b: 2 });
  expect(statSync(f).mode & 0o777).toBe(0o600);
  expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
});

test("stale temp files of dead processes are removed; a live process's are kept; other files untouched", () => {
  const dead = Bun.spawnSync(["true"]).pid;
  const liveChild = Bun.spawn(["sleep", "30"]);
  try {
    const staleName = `.${dead}.1700000000000.abc123.tmp`;
    const liveName = `.${liveChild.pid}.1700000000000.def456.tmp`;
    writeFileSync(join(dir, staleName), "x");
    writeFileSync(join(dir, liveName), "x");
    writeFileSync(join(dir, "keep.tmp"), "x");
    expect(removeStaleTempFiles(dir)).toEqual([staleName]);
    expect(existsSync(join(dir, liveName))).toBe(true);
    expect(existsSync(join(dir, "keep.tmp"))).toBe(true);
    expect(removeStaleTempFiles(join(dir, "missing"))).toEqual([]);
  } finally {
    liveChild.kill();
  }
});
