/** File listing for scans: names are bytes, not text (issue 21). */
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listFiles, readAt, type SourceError, withFd } from "./sources.ts";

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
