/**
 * Kernel ignore marks (ignore-marks.ts) through the access sensor in block mode, against the real
 * kernel (root), on a temp dir only. The decider here is a stand-in for DatasetA's: it refuses files
 * containing "BAD" and hands clean ones back to the sensor with their fd, as on-access.ts does.
 * "Reached the sensor" counts every permission event, wherever answered (main or reader thread).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, fstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AccessEvent, AccessSensor } from "./access.ts";

setDefaultTimeout(30_000);
const isRoot = process.getuid?.() === 0;

const root = mkdtempSync(join(tmpdir(), "outpost-ignore-"));
const dir = join(root, "watched");
const sub = join(dir, "sub");
mkdirSync(sub, { recursive: true });
const decided: AccessEvent[] = [];
let sensor: AccessSensor;

function decide(ev: AccessEvent): Promise<boolean> {
  decided.push({ ...ev });
  const clean = !readFileSync(`/proc/self/fd/${ev.fd}`, "latin1").includes("BAD");
  if (clean) sensor.allowFile(fstatSync(ev.fd, { bigint: true }), ev.fd);
  return Promise.resolve(clean);
}

type Counts = { [k: string]: number } & {
  events: number;
  cacheAllowed: number;
  allowedSelf: number;
  closeWrites: number;
  ignoreMarksRemoved: number;
  ignoreMarksFlushes: number;
};
const stats = () => sensor.stats() as unknown as Counts;
/** Permission events the kernel delivered, answered on either thread (our own opens included). */
const reached = () => stats().events + stats().cacheAllowed + stats().allowedSelf;

/** A grandchild (our direct children count as the agent's own processes, allowed unasked). */
async function sh(cmd: string): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(["sh", "-c", cmd], { stdout: "ignore", stderr: "pipe" });
  return { code: await p.exited, stderr: await new Response(p.stderr).text() };
}

async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(5);
  return cond();
}

/** Writes `bytes` at offset 0 of `path` through a shared writable mapping held until `release()`. */
async function mmapWriter(path: string, bytes: string) {
  const py = [
    "import mmap, os, sys",
    `fd = os.open(${JSON.stringify(path)}, os.O_RDWR)`,
    "m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)",
    "os.close(fd)", // only the mapping holds the file now
    `m[0:${bytes.length}] = ${JSON.stringify(bytes)}.encode()`,
    "print('mapped', flush=True)",
    "sys.stdin.read()",
    "m.close()",
  ].join("\n");
  const p = Bun.spawn(["python3", "-c", py], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  expect(new TextDecoder().decode(first.value)).toContain("mapped");
  return {
    release: async () => {
      p.stdin.end();
      expect(await p.exited).toBe(0);
    },
  };
}

beforeAll(() => {
  if (!isRoot) return;
  sensor = new AccessSensor({ mode: "block", paths: [dir], timeoutMs: 5000, decide, maxIgnoreMarks: 4 });
  expect(sensor.start()).toBeUndefined();
});

// Each test starts with no verdict and no ignore mark (the limit is small, see the last test).
beforeEach(() => {
  if (isRoot) sensor.forgetAllowed();
});

afterAll(async () => {
  await sensor?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe.if(isRoot)("kernel ignore marks (block mode)", () => {
  test("a clean file opened again raises no event; write(2) to it brings the next open back", async () => {
    const f = join(dir, "clean.txt");
    writeFileSync(f, "plain text");
    expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(stats().ignoreMarks).toBe(1);
    const before = reached();
    for (let i = 0; i < 3; i++) expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(reached()).toBe(before);
    // A modify event clears the ignore mask: the next open is decided again — and refused.
    writeFileSync(f, "now BAD bytes");
    const n = decided.length;
    const r = await sh(`cat ${f}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Operation not permitted");
    expect(decided.length).toBe(n + 1);
  });

  test("written through a shared writable mmap: an exec is decided before the close, any open after it", async () => {
    const f = join(dir, "mapped.sh");
    writeFileSync(f, "true # fine\n");
    chmodSync(f, 0o755);
    expect((await sh(`cat ${f}`)).code).toBe(0);
    const before = reached();
    expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(reached()).toBe(before); // in the kernel's ignore cache
    const writer = await mmapWriter(f, "BAD!");
    try {
      // No modify event for mmap writes, so the ignore mark stands; execs are not in it and the
      // sensor's AllowCache sees the new mtime: the exec is decided, and refused.
      const n = decided.length;
      const r = await sh(f);
      expect(r.code).not.toBe(0);
      expect(decided.slice(n).some((e) => e.kind === "exec" && e.path === f)).toBe(true);
    } finally {
      const removed = stats().ignoreMarksRemoved;
      await writer.release();
      // The mapping was the last writer: FAN_CLOSE_WRITE takes the ignore mark off.
      expect(await until(() => stats().ignoreMarksRemoved > removed)).toBe(true);
    }
    const n = decided.length;
    expect((await sh(`cat ${f}`)).code).not.toBe(0);
    expect(decided.slice(n).map((e) => e.kind)).toEqual(["open"]);
  });

  test("mmap-modified, closed, then opened: decided again (not only execs)", async () => {
    const f = join(sub, "data.bin");
    writeFileSync(f, "clean data here");
    expect((await sh(`cat ${f}`)).code).toBe(0);
    const removed = stats().ignoreMarksRemoved;
    await (await mmapWriter(f, "BAD")).release();
    expect(await until(() => stats().ignoreMarksRemoved > removed)).toBe(true);
    const n = decided.length;
    expect((await sh(`cat ${f}`)).code).not.toBe(0);
    expect(decided.length).toBe(n + 1);
  });

  test("a close after writing takes the mark off even when the file's key did not move", async () => {
    // Opened for appending, nothing written: no modify event, same (mtime, ctime, size) — the case of
    // an mmap write within one timestamp tick. The close must still reach the main thread.
    const f = join(dir, "same-key.txt");
    writeFileSync(f, "stays clean");
    expect((await sh(`cat ${f}`)).code).toBe(0);
    const removed = stats().ignoreMarksRemoved;
    expect((await sh(`: >> ${f}`)).code).toBe(0);
    expect(await until(() => stats().ignoreMarksRemoved > removed)).toBe(true);
    expect(stats().ignoreMarksRemoved).toBe(removed + 1);
    const n = decided.length;
    expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(decided.length).toBe(n + 1);
  });

  test("forgetting every verdict flushes the ignore marks and keeps the directory marks", async () => {
    const f = join(sub, "kept.txt");
    writeFileSync(f, "kept clean");
    expect((await sh(`cat ${f}`)).code).toBe(0);
    const before = reached();
    expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(reached()).toBe(before);
    const flushes = stats().ignoreMarksFlushes;
    sensor.forgetAllowed();
    expect(stats()).toMatchObject({ ignoreMarksFlushes: flushes + 1, ignoreMarks: 0, remarkErrors: 0 });
    let n = decided.length;
    expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(decided.length).toBe(n + 1);
    // Both inode-marked directories report new files again.
    for (const d of [dir, sub]) {
      const bad = join(d, "after-flush.txt");
      writeFileSync(bad, "BAD");
      n = decided.length;
      expect((await sh(`cat ${bad}`)).code).not.toBe(0);
      expect(decided.length).toBe(n + 1);
    }
  });

  test("past the limit no mark is added (said in stats) and the userspace cache answers", async () => {
    const files = Array.from({ length: 6 }, (_, i) => join(dir, `many-${i}`));
    for (const f of files) writeFileSync(f, `clean ${f}`);
    for (const f of files) expect((await sh(`cat ${f}`)).code).toBe(0);
    expect(stats()).toMatchObject({ ignoreMarksFull: true, ignoreMarksMax: 4 });
    expect(stats().ignoreMarksSkippedFull).toBeGreaterThanOrEqual(2);
    const fast = stats().cacheAllowed;
    const n = decided.length;
    for (const f of files) expect((await sh(`cat ${f}`)).code).toBe(0);
    // Four files in the kernel's cache, two answered on the reader thread; none reached the decider.
    expect(stats().cacheAllowed - fast).toBe(2);
    expect(decided.length).toBe(n);
  });
});
