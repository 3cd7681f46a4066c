/**
 * fanotifyAllowMany (libc.ts): the reader thread answers the opens it may allow (our own, and files
 * in the AllowCache) with one writev per read. Real kernel, root: eight `cat`s held in FAN_OPEN_PERM
 * are all released by one call, and each gets its file.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeFd, fanotifyAllowMany, fanotifyInit, fanotifyMark, pollIn, readFd } from "./libc.ts";
import { FAN, FAN_INIT, FAN_MARK, parseFanotify } from "./parse.ts";

setDefaultTimeout(20_000);
const root = process.getuid?.() === 0;

describe.skipIf(!root)("fanotify: many permission answers in one writev", () => {
  test("eight opens held by the kernel are all allowed by one call", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-fan-allow-"));
    const fd = fanotifyInit(FAN_INIT.CLOEXEC | FAN_INIT.CLASS_CONTENT, 0);
    expect(fd).toBeGreaterThanOrEqual(0);
    const cats: ReturnType<typeof Bun.spawn>[] = [];
    try {
      for (let i = 0; i < 8; i++) writeFileSync(join(dir, `f${i}`), `content ${i}`);
      expect(fanotifyMark(fd, FAN_MARK.ADD, FAN.OPEN_PERM | FAN.EVENT_ON_CHILD, dir)).toBe(0);
      for (let i = 0; i < 8; i++) cats.push(Bun.spawn(["cat", join(dir, `f${i}`)], { stdout: "pipe" }));
      // Gather the eight held opens (they may come over several reads), answering none yet.
      const held: number[] = [];
      const buf = new Uint8Array(64 * 1024);
      const deadline = Date.now() + 10_000;
      while (held.length < 8 && Date.now() < deadline) {
        const ready = pollIn([fd], 100);
        if (typeof ready === "number" || ready.length === 0) continue;
        const n = readFd(fd, buf);
        for (const r of parseFanotify(buf, n)) if (r.fd >= 0 && r.mask & FAN.OPEN_PERM) held.push(r.fd);
      }
      expect(held.length).toBe(8);
      // Nobody got through yet: every cat is still waiting in open().
      expect(cats.every((c) => c.exitCode === null)).toBe(true);
      expect(fanotifyAllowMany(fd, held)).toBe(8);
      for (const f of held) closeFd(f);
      const outputs = await Promise.all(
        cats.map(async (c) => {
          const out = await new Response(c.stdout as ReadableStream).text();
          return { code: await c.exited, out };
        }),
      );
      expect(outputs.map((o) => o.code)).toEqual(Array(8).fill(0));
      expect(outputs.map((o) => o.out)).toEqual(Array.from({ length: 8 }, (_, i) => `content ${i}`));
    } finally {
      // Closing the group allows anything still held, so a failed assertion cannot leave a cat hanging.
      closeFd(fd);
      for (const c of cats) c.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
