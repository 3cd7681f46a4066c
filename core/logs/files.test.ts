/** The agent's rotating JSON-lines log files. */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "../log.ts";
import { attachLogFiles, RotatingLogFile } from "./files.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-logs-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("rotates by size and keeps maxFiles rotated files", () => {
  const f = new RotatingLogFile({ dir, maxBytes: 100, maxFiles: 2 });
  for (let i = 0; i < 10; i++) f.write(JSON.stringify({ i, pad: "x".repeat(30) }));
  f.close();
  expect(existsSync(join(dir, "agent.log"))).toBe(true);
  expect(existsSync(join(dir, "agent.log.1"))).toBe(true);
  expect(existsSync(join(dir, "agent.log.2"))).toBe(true);
  expect(existsSync(join(dir, "agent.log.3"))).toBe(false);
  const last = readFileSync(join(dir, "agent.log"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).i);
  expect(last.at(-1)).toBe(9);
  expect(f.rotations).toBeGreaterThanOrEqual(3);
});

test("every record of every component lands in the file as one JSON line; detach stops it", () => {
  const root = new Logger({}, undefined, "info", false);
  const { file, detach } = attachLogFiles(root, {
    stateDir: dir,
    logs: { enabled: true, maxBytes: 1 << 20, maxFiles: 2 },
  });
  root.child({ component: "agent" }).warn("update rejected", { code: "UPD_NETWORK" });
  root.debug("below the level");
  detach();
  root.info("after detach");
  const lines = readFileSync(file!.path, "utf8").trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({
    level: "warn",
    msg: "update rejected",
    component: "agent",
    code: "UPD_NETWORK",
  });
  expect(file!.path).toBe(join(dir, "logs", "agent.log"));
});

test("a write that fails (directory removed) never throws; the file is recreated", () => {
  let clock = 10_000;
  const f = new RotatingLogFile({ dir: join(dir, "d"), maxBytes: 1 << 20, maxFiles: 1, now: () => clock });
  f.write("one");
  rmSync(join(dir, "d"), { recursive: true });
  clock += 1000; // the "still our file?" check runs at most once a second
  f.write("two");
  f.close();
  expect(readFileSync(join(dir, "d", "agent.log"), "utf8")).toContain("two");
});

test("disabled: nothing written", () => {
  const root = new Logger({}, undefined, "info", false);
  const { file } = attachLogFiles(root, {
    stateDir: dir,
    logs: { enabled: false, maxBytes: 1 << 20, maxFiles: 2 },
  });
  root.info("x");
  expect(file).toBeNull();
  expect(existsSync(join(dir, "logs"))).toBe(false);
});
