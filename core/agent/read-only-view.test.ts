import { afterEach, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openViewWorkRoot } from "./read-only-view.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test("a view's work dirs carry each group's small files, and nothing of the supervisor's own entries", () => {
  const state = mkdtempSync(join(tmpdir(), "outpost-rov-"));
  dirs.push(state);
  mkdirSync(join(state, "hosts", "behavior"), { recursive: true });
  writeFileSync(join(state, "hosts", "behavior", "content-keys.json"), '{"k":1}');
  // The V1 views' skeletons and fstabs (core/host/state-view.ts): not a group, never copied.
  mkdirSync(join(state, "hosts", ".state-view", "behavior", "hosts", "behavior"), { recursive: true });
  writeFileSync(join(state, "hosts", ".state-view", "behavior.fstab"), "/x /y none bind 0 0\n");
  const view = openViewWorkRoot(state);
  try {
    expect(readdirSync(view.hostsDir)).toEqual(["behavior"]);
    expect(readFileSync(join(view.hostsDir, "behavior", "content-keys.json"), "utf8")).toBe('{"k":1}');
  } finally {
    view.dispose();
  }
  expect(existsSync(view.hostsDir)).toBe(false);
});
