import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Outbox } from "./outbox.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-outbox-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (opts = {}) => {
  const dir = join(root, `o${++n}`);
  return { dir, box: new Outbox(dir, opts) };
};
const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => `{"n":${from + i}}`);

describe("Outbox", () => {
  test("numbers lines, pulls after the last ack, and acks by generation", () => {
    const { box } = fresh();
    expect(box.append(lines(1, 3))).toBe(1);
    expect(box.append(lines(4, 2))).toBe(4);
    const p = box.pull(4);
    expect(p).toMatchObject({ first: 1, pending: 5 });
    expect(p.lines).toEqual(lines(1, 4));
    expect(box.ack("another-generation", 4)).toBe(false);
    expect(box.ack(p.generation, 4)).toBe(true);
    expect(box.pull(10)).toMatchObject({ first: 5, lines: lines(5, 1), pending: 1 });
  });

  test("survives a restart: generation, sequence and acknowledgements persist", () => {
    const { dir, box } = fresh();
    box.append(lines(1, 5));
    box.ack(box.generation, 2);
    const again = new Outbox(dir);
    expect(again.generation).toBe(box.generation);
    expect(again.pull(10)).toMatchObject({ first: 3, lines: lines(3, 3) });
    expect(again.append(lines(6, 1))).toBe(6);
  });

  test("a torn last line (crash mid-append) is cut on restart", () => {
    const { dir, box } = fresh();
    box.append(lines(1, 2));
    const seg = readdirSync(dir).find((f) => f.startsWith("seg-"))!;
    appendFileSync(join(dir, seg), '{"n":3');
    const again = new Outbox(dir);
    expect(again.pull(10).lines).toEqual(lines(1, 2));
    expect(again.append(lines(3, 1))).toBe(3);
    expect(again.pull(10).lines).toEqual(lines(1, 3));
  });

  test("acknowledged segments are deleted; the size cap drops the oldest and counts it", () => {
    const { dir, box } = fresh({ segmentBytes: 100, maxBytes: 400 });
    for (let i = 0; i < 20; i++) box.append(lines(i * 5 + 1, 5));
    const s = box.stats();
    expect(s.dropped).toBeGreaterThan(0);
    expect(box.bytes).toBeLessThanOrEqual(400 + 100);
    // What is left is contiguous and ends at the last line.
    const p = box.pull(1000);
    expect(p.first).toBe(s.acked + 1);
    expect(p.first + p.lines.length - 1).toBe(100);
    box.ack(p.generation, 100);
    expect(readdirSync(dir).filter((f) => f.startsWith("seg-")).length).toBe(1);
    expect(box.pending).toBe(0);
  });

  test("a pull reads only what was appended since the last one; a restart resumes at the first pending line", () => {
    const { dir, box } = fresh();
    // What the segment being appended to holds after hours of acknowledged runs.
    const acked = Array.from({ length: 2000 }, (_, i) => `{"n":${i + 1},"pad":"${"é".repeat(100)}"}`);
    box.append(acked);
    const segBytes = box.bytes;
    expect(box.pull(5000).lines).toHaveLength(2000);
    box.ack(box.generation, 2000);
    for (let run = 0; run < 3; run++) {
      const before = box.readBytes;
      const seq = box.append([`{"run":${run}}`]);
      const p = box.pull(100);
      expect(p).toMatchObject({ first: seq, lines: [`{"run":${run}}`], pending: 1 });
      // The new line only, not the ~200 KiB of acknowledged lines before it.
      expect(box.readBytes - before).toBe(`{"run":${run}}\n`.length);
      box.ack(p.generation, seq);
    }
    const tail = box.append(['{"after":"restart"}', '{"n":"ü"}']);
    const again = new Outbox(dir);
    // Recovery reads the segment once to count its lines; the first pull then reads only the pending lines.
    expect(again.readBytes).toBe(box.bytes);
    expect(box.bytes).toBeGreaterThan(segBytes);
    const p = again.pull(10);
    expect(p).toMatchObject({ first: tail, lines: ['{"after":"restart"}', '{"n":"ü"}'], pending: 2 });
    expect(again.readBytes - box.bytes).toBe(Buffer.byteLength('{"after":"restart"}\n{"n":"ü"}\n'));
    // A pull that stops at its budget and one that follows it see each line once.
    again.append(["a", "b", "c"]);
    expect(again.pull(2)).toMatchObject({ first: tail, lines: ['{"after":"restart"}', '{"n":"ü"}'] });
    again.ack(p.generation, tail);
    expect(again.pull(2)).toMatchObject({ first: tail + 1, lines: ['{"n":"ü"}', "a"] });
    again.ack(p.generation, tail + 2);
    expect(again.pull(10)).toMatchObject({ first: tail + 3, lines: ["b", "c"], pending: 2 });
  });

  test("pull respects a byte budget but always returns at least one line", () => {
    const { box } = fresh();
    box.append(["x".repeat(50), "y".repeat(50), "z"]);
    expect(box.pull(10, 60).lines).toHaveLength(1);
    expect(box.pull(10, 10).lines).toHaveLength(1);
  });

  test("the age of the oldest pending line is known until a restart", () => {
    let now = 1000;
    const { dir, box } = fresh({ now: () => now });
    expect(box.oldestPendingAgeMs()).toBe(0);
    box.append(lines(1, 1));
    now = 1500;
    expect(box.oldestPendingAgeMs()).toBe(500);
    expect(new Outbox(dir).oldestPendingAgeMs()).toBe(Number.POSITIVE_INFINITY);
  });

  test("lines must be single lines", () => {
    expect(() => fresh().box.append(["a\nb"])).toThrow("must not contain newlines");
  });
});
