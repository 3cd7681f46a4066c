/** The log tailer under rotation, truncation, vanishing and partial writes: lines, never exceptions. */
import { afterEach, beforeEach, expect, test } from "bun:test";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileTailer } from "./tail.ts";

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-tail-"));
  path = join(dir, "app.log");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("reads complete lines only, then what is appended", () => {
  writeFileSync(path, "one\ntwo\nthr");
  const t = new FileTailer(path);
  expect(t.poll()).toEqual(["one", "two"]);
  expect(t.poll()).toEqual([]);
  appendFileSync(path, "ee\nfour\n");
  expect(t.poll()).toEqual(["three", "four"]);
});

test("rotation: the rest of the old file, then the new file from its start", () => {
  writeFileSync(path, "a1\n");
  const t = new FileTailer(path);
  expect(t.poll()).toEqual(["a1"]);
  appendFileSync(path, "a2\n");
  renameSync(path, `${path}.1`);
  writeFileSync(path, "b1\nb2\n");
  expect(t.poll()).toEqual(["a2", "b1", "b2"]);
  expect(t.counters.rotations).toBe(1);
  appendFileSync(path, "b3\n");
  expect(t.poll()).toEqual(["b3"]);
});

test("truncation (copytruncate): reading restarts at the beginning", () => {
  writeFileSync(path, "old line 1\nold line 2\n");
  const t = new FileTailer(path);
  expect(t.poll()).toHaveLength(2);
  truncateSync(path, 0);
  appendFileSync(path, "new\n");
  expect(t.poll()).toEqual(["new"]);
  expect(t.counters.truncations).toBe(1);
});

test("a file that vanishes (and its directory) and comes back: no error, new lines read", () => {
  const sub = join(dir, "sub");
  mkdirSync(sub);
  const p = join(sub, "x.log");
  const t = new FileTailer(p);
  expect(t.poll()).toEqual([]); // not there yet
  writeFileSync(p, "first\n");
  expect(t.poll()).toEqual(["first"]);
  rmSync(sub, { recursive: true });
  expect(t.poll()).toEqual([]);
  expect(t.poll()).toEqual([]);
  mkdirSync(sub);
  writeFileSync(p, "again\n");
  expect(t.poll()).toEqual(["again"]);
  expect(t.counters.vanished).toBe(1);
});

test("a path that is a directory, or unreadable garbage, never throws", () => {
  mkdirSync(path);
  const t = new FileTailer(path);
  expect(t.poll()).toEqual([]);
  rmSync(path, { recursive: true });
  writeFileSync(path, Buffer.from([0xff, 0xfe, 0x0a, 0x41, 0x0a]));
  expect(t.poll()).toHaveLength(2);
});

test("over-long lines are cut and a big backlog is spread over polls", () => {
  writeFileSync(path, `${"x".repeat(100_000)}\nshort\n`);
  const t = new FileTailer(path, { maxLine: 1000, maxBytes: 64 * 1024, backlogBytes: 1 << 20 });
  const first = t.poll();
  expect(first).toEqual([]);
  const second = t.poll();
  expect(second.map((l) => l.length)).toEqual([1000, 5]);
});

test("the supervisor sends lines in messages bounded by count and bytes", async () => {
  const { chunkBatches } = await import("./service.ts");
  const chunks = chunkBatches(
    [
      { source: "agent", lines: ["a", "b", "c"] },
      { source: "file:/var/log/x", lines: ["x".repeat(100), "y"] },
    ],
    2,
    400,
  );
  expect(chunks).toEqual([
    [{ source: "agent", lines: ["a", "b"] }],
    [
      { source: "agent", lines: ["c"] },
      { source: "file:/var/log/x", lines: ["x".repeat(100)] },
    ],
    [{ source: "file:/var/log/x", lines: ["y"] }],
  ]);
  // A line over the byte budget still travels, alone.
  expect(chunkBatches([{ source: "agent", lines: ["a", "z".repeat(500)] }], 10, 400)).toEqual([
    [{ source: "agent", lines: ["a"] }],
    [{ source: "agent", lines: ["z".repeat(500)] }],
  ]);
  expect(chunkBatches([], 10, 10)).toEqual([[]]);
});
