import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RotatingFileSink } from "./results-file.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-filesink-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const path = () => join(root, `d${++n}`, "results.log");
const lines = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => `{"name":"q","seq":${from + i}}`);
const read = (p: string) => (existsSync(p) ? readFileSync(p, "utf8").split("\n").filter(Boolean) : []);

describe("RotatingFileSink", () => {
  test("appends JSON lines and skips lines it already holds", async () => {
    const p = path();
    const sink = new RotatingFileSink({ path: p });
    await sink.write({ generation: "g1", first: 1, lines: lines(1, 3) });
    // Offered again with more (the supervisor crashed before it acknowledged).
    await sink.write({ generation: "g1", first: 1, lines: lines(1, 5) });
    await sink.write({ generation: "g2", first: 1, lines: lines(100, 1) });
    expect(read(p)).toEqual([...lines(1, 5), ...lines(100, 1)]);
    expect(sink.stats()).toMatchObject({ acceptedLines: 6, duplicateLines: 3 });
  });

  test("rotates to .1 … .N and keeps at most maxFiles old files", async () => {
    const p = path();
    const sink = new RotatingFileSink({ path: p, maxBytes: 200, maxFiles: 2 });
    for (let i = 0; i < 10; i++)
      await sink.write({ generation: "g", first: i * 4 + 1, lines: lines(i * 4 + 1, 4) });
    expect(existsSync(`${p}.1`)).toBe(true);
    expect(existsSync(`${p}.2`)).toBe(true);
    expect(existsSync(`${p}.3`)).toBe(false);
    const kept = [...read(`${p}.2`), ...read(`${p}.1`), ...read(p)];
    // The newest lines, in order, with nothing repeated.
    expect(kept).toEqual(lines(41 - kept.length, kept.length));
  });

  test("a write the cursor never recorded (crash) is cut on restart and lands once", async () => {
    const p = path();
    const sink = new RotatingFileSink({ path: p });
    await sink.write({ generation: "g", first: 1, lines: lines(1, 2) });
    await sink.close();
    // The crash: lines 3–4 reached the file, the cursor was not updated.
    appendFileSync(p, `${lines(3, 2).join("\n")}\n`);
    const again = new RotatingFileSink({ path: p });
    expect(read(p)).toEqual(lines(1, 2));
    await again.write({ generation: "g", first: 3, lines: lines(3, 2) });
    expect(read(p)).toEqual(lines(1, 4));
  });

  test("a damaged cursor is survived (at worst a repeat, never a loss)", async () => {
    const p = path();
    const sink = new RotatingFileSink({ path: p });
    await sink.write({ generation: "g", first: 1, lines: lines(1, 1) });
    writeFileSync(`${p}.cursor`, "{torn");
    const again = new RotatingFileSink({ path: p });
    await again.write({ generation: "g", first: 2, lines: lines(2, 1) });
    expect(read(p)).toEqual(lines(1, 2));
  });
});
