import { expect, test } from "bun:test";
import { ExcludedEventFilter } from "./event-filter.ts";
import { ExclusionMatcher } from "./matcher.ts";

const matcher = new ExclusionMatcher([
  { kind: "process", value: "/usr/lib/postgresql", scope: ["behavior"], reason: "", source: "config" },
  { kind: "process", value: "rsync", scope: ["onAccess"], reason: "", source: "config" },
]);

test("an excluded process's events are dropped until it exits; its children and others pass", () => {
  const f = new ExcludedEventFilter("behavior");
  const out = f.filter(
    [
      { type: "process.start", pid: 10, exe: "/usr/lib/postgresql/15/bin/postgres", name: "postgres" },
      { type: "file.write", pid: 10, path: "/var/lib/postgresql/x" },
      { type: "process.start", pid: 11, exe: "/usr/bin/sh", name: "sh" },
      { type: "file.write", pid: 11, path: "/tmp/y" },
      // rsync is excluded for on-access only: Behavior still sees it.
      { type: "process.start", pid: 12, exe: "/usr/bin/rsync", name: "rsync" },
      { type: "process.exit", pid: 10 },
      // pid 10 reused by an ordinary process after the exit.
      { type: "process.start", pid: 10, exe: "/usr/bin/cat", name: "cat" },
      { type: "file.write", pid: 10, path: "/tmp/z" },
    ],
    matcher,
  );
  expect(out.map((e) => `${e.type}:${e.pid}`)).toEqual([
    "process.start:11",
    "file.write:11",
    "process.start:12",
    "process.start:10",
    "file.write:10",
  ]);
  expect(f.dropped).toBe(3);
});

test("with no exclusions the batch passes untouched", () => {
  const batch = [{ type: "process.start", pid: 1, exe: "/usr/lib/postgresql/15/bin/postgres" }];
  expect(new ExcludedEventFilter("behavior").filter(batch, ExclusionMatcher.empty)).toBe(batch);
});
