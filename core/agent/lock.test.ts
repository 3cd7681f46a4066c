import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireLock, bootId, lockHolder, processStartTime } from "./lock.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the lock records pid, start time and boot id, and a second acquire in another process is refused", async () => {
  const path = join(dir, "a.lock");
  const release = acquireLock(path);
  const owner = JSON.parse(readFileSync(path, "utf8"));
  expect(owner).toEqual({ pid: process.pid, start: processStartTime(process.pid), boot: bootId() });
  expect(lockHolder(path)).toBe(process.pid);
  const child = Bun.spawnSync(
    [
      process.execPath,
      "-e",
      `require(${JSON.stringify(join(import.meta.dir, "lock.ts"))}).acquireLock(${JSON.stringify(path)})`,
    ],
    { stderr: "pipe" },
  );
  expect(child.exitCode).not.toBe(0);
  expect(child.stderr.toString()).toContain("AGENT_LOCKED");
  release();
  expect(lockHolder(path)).toBeUndefined();
});

test("a lock whose pid was recycled by another process (different start time) is stale", () => {
  const path = join(dir, "b.lock");
  writeFileSync(path, JSON.stringify({ pid: process.pid, start: "1", boot: bootId() }));
  expect(lockHolder(path)).toBeUndefined();
  acquireLock(path)();
});

test("a lock from a previous boot is stale", () => {
  const path = join(dir, "c.lock");
  writeFileSync(
    path,
    JSON.stringify({ pid: process.pid, start: processStartTime(process.pid), boot: "another-boot" }),
  );
  expect(lockHolder(path)).toBeUndefined();
});

test("a dead owner's lock is taken over", () => {
  const path = join(dir, "d.lock");
  const dead = Bun.spawnSync(["true"]).pid;
  writeFileSync(path, JSON.stringify({ pid: dead }));
  const release = acquireLock(path);
  expect(lockHolder(path)).toBe(process.pid);
  release();
});
