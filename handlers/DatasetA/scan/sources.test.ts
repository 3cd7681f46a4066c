/** File listing for scans: names are bytes, not text (issue 21). */
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listFiles, ReadBuffer, readAt, type SourceError, withFd } from "./sources.ts";

test("a file whose name is not UTF-8 is listed, opened by its byte path and shown escaped", () => {
  const root = mkdtempSync(join(tmpdir(), "outpost-sources-"));
  try {
    // Latin-1 "café" (0xe9 alone is not UTF-8), in a directory whose name is not UTF-8 either.
    const dir = Buffer.concat([Buffer.from(`${root}/d`), Buffer.from([0xff])]);
    mkdirSync(dir);
    const file = Buffer.concat([dir, Buffer.from("/caf"), Buffer.from([0xe9]), Buffer.from(".bin")]);
    writeFileSync(file, "payload-bytes");
    writeFileSync(join(root, "plain.txt"), "plain");
    const errors: SourceError[] = [];
    const files = listFiles([root], errors);
    expect(errors).toEqual([]);
    expect(files.map((f) => f.path)).toEqual([`${root}/d\\xff/caf\\xe9.bin`, `${root}/plain.txt`]);
    const odd = files[0]!;
    expect(Buffer.isBuffer(odd.fsPath)).toBe(true);
    expect(odd.size).toBe(13);
    const bytes = withFd(odd.fsPath, (fd) => readAt(fd, 0, odd.size));
    expect(Buffer.from(bytes).toString()).toBe("payload-bytes");
    // Valid UTF-8 names stay strings.
    expect(files[1]!.fsPath).toBe(`${root}/plain.txt`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a ReadBuffer reads each range into one reused buffer, and what is larger than it into a fresh one", () => {
  const root = mkdtempSync(join(tmpdir(), "outpost-readbuf-"));
  try {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 255;
    writeFileSync(join(root, "f.bin"), data);
    const rb = new ReadBuffer(200_000);
    withFd(join(root, "f.bin"), (fd) => {
      const a = rb.read(fd, 0, 150_000);
      expect(Buffer.from(a).equals(data.subarray(0, 150_000))).toBe(true);
      const b = rb.read(fd, 150_000, 150_000);
      expect(Buffer.from(b).equals(data.subarray(150_000))).toBe(true);
      // Same memory: the first view now shows the second read (callers use a read before the next).
      expect(b.buffer).toBe(a.buffer);
      expect(a[0]).toBe(data[150_000]!);
      // Past the end: the bytes that exist.
      expect(rb.read(fd, 299_990, 100).length).toBe(10);
      const big = rb.read(fd, 0, 250_000);
      expect(big.buffer).not.toBe(a.buffer);
      expect(Buffer.from(big).equals(data.subarray(0, 250_000))).toBe(true);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
