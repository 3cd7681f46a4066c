import { describe, expect, test } from "bun:test";
import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreError } from "../errors.ts";
import { Spool } from "./spool.ts";

const temp = () => mkdtempSync(join(tmpdir(), "outpost-spool-"));

/** Resident kB of the mapping that holds `bytes`' first page, from /proc/self/smaps. */
function residentKb(bytes: Uint8Array): number {
  const { ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const address = ptr(bytes);
  const lines = require("node:fs").readFileSync("/proc/self/smaps", "latin1").split("\n") as string[];
  for (let i = 0; i < lines.length; i++) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(lines[i]!);
    if (!m || address < Number.parseInt(m[1]!, 16) || address >= Number.parseInt(m[2]!, 16)) continue;
    for (let j = i + 1; j < lines.length && !/^[0-9a-f]+-/.test(lines[j]!); j++) {
      const rss = /^Rss:\s+(\d+) kB/.exec(lines[j]!);
      if (rss) return Number(rss[1]);
    }
  }
  throw new Error("mapping not found");
}

describe("Spool", () => {
  test("chunks in, one mapped Uint8Array out; the file is gone once finished", () => {
    const dir = temp();
    try {
      const spool = new Spool(join(dir, "spool"));
      const file = spool.open("http://repo/pkg.tar");
      const a = new Uint8Array(3 << 20).fill(7);
      const b = new Uint8Array(12345).map((_, i) => i & 0xff);
      file.write(a);
      file.write(b);
      expect(file.size).toBe(a.length + b.length);
      expect(existsSync(file.path)).toBe(true);
      const body = file.finish();
      expect(existsSync(file.path)).toBe(false);
      expect(readdirSync(spool.dir)).toEqual([]);
      expect(body.bytes.length).toBe(a.length + b.length);
      expect(body.bytes[0]).toBe(7);
      expect(Buffer.from(body.bytes.subarray(a.length)).equals(Buffer.from(b))).toBe(true);
      // Pages of the file, not of the heap: resident after reading, gone once released (the
      // array then reads zeros: release only what has been consumed).
      let sum = 0;
      for (let i = 0; i < body.bytes.length; i += 4096) sum += body.bytes[i]!;
      expect(sum).toBeGreaterThan(0);
      expect(residentKb(body.bytes)).toBeGreaterThanOrEqual(3 * 1024);
      body.release();
      expect(residentKb(body.bytes)).toBe(0);
      expect(body.bytes[a.length + 300]).toBe(0);
      body.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an empty body is an empty array; abort removes the file", () => {
    const dir = temp();
    try {
      const spool = new Spool(dir);
      expect(spool.open("x").finish().bytes.length).toBe(0);
      const f = spool.open("y");
      f.write(new Uint8Array(10));
      f.abort();
      f.abort();
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("files a dead process left are swept on first use; a live process's are kept", () => {
    const dir = temp();
    try {
      const dead = spawnSync("true").pid;
      writeFileSync(join(dir, `${dead}-x-0.part`), "left behind");
      writeFileSync(join(dir, `${process.ppid}-y-0.part`), "another agent's, still downloading");
      writeFileSync(join(dir, "junk"), "not ours to keep");
      const spool = new Spool(dir);
      spool.open("z").abort();
      expect(readdirSync(dir)).toEqual([`${process.ppid}-y-0.part`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a symbolic link in the spool's place is refused (STORE_SYMLINK), its target untouched", () => {
    const dir = temp();
    try {
      const target = join(dir, "elsewhere");
      mkdirSync(target);
      writeFileSync(join(target, "precious"), "keep");
      symlinkSync(target, join(dir, "spool"));
      let err: unknown;
      try {
        new Spool(join(dir, "spool")).open("x");
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).toBe("STORE_SYMLINK");
      expect(readdirSync(target)).toEqual(["precious"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(process.getuid?.() !== 0)(
    "release gives the unlinked file's disk space back at once, not at the next collection",
    () => {
      const dir = temp();
      const mnt = join(dir, "disk");
      mkdirSync(mnt);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "outpost-spool-test", mnt]);
      try {
        const free = () => Number(statfsSync(mnt).bavail);
        const before = free();
        const file = new Spool(join(mnt, "spool")).open("pkg.tar");
        file.write(new Uint8Array(2 << 20).fill(1));
        const body = file.finish();
        // Unlinked, but its blocks stay allocated while mapped.
        expect(readdirSync(join(mnt, "spool"))).toEqual([]);
        expect(before - free()).toBeGreaterThanOrEqual(512);
        body.release();
        expect(before - free()).toBeLessThan(8);
        expect(body.bytes.length).toBe(2 << 20);
      } finally {
        execFileSync("umount", [mnt]);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test.skipIf(process.getuid?.() !== 0)(
    "a full disk is the store's STORE_NO_SPACE, naming the spool file and the package",
    () => {
      const dir = temp();
      const mnt = join(dir, "small");
      mkdirSync(mnt);
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "outpost-spool-test", mnt]);
      try {
        const spool = new Spool(join(mnt, "spool"));
        const file = spool.open("http://repo/big.tar");
        let err: unknown;
        try {
          for (let i = 0; i < 64; i++) file.write(new Uint8Array(16384));
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(StoreError);
        expect((err as StoreError).code).toBe("STORE_NO_SPACE");
        expect((err as StoreError).file).toBe(file.path);
        expect((err as StoreError).message).toContain("while spooling http://repo/big.tar");
        file.abort();
        expect(readdirSync(spool.dir)).toEqual([]);
      } finally {
        execFileSync("umount", [mnt]);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
