import { afterAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExclusionMatcher } from "../../core/exclusions/matcher.ts";
import type { Exclusion } from "../../core/exclusions-config.ts";
import { type ContentView, viewOverBytes } from "../../core/handler/contract.ts";
import { localRepDataHandler } from "./index.ts";
import { ProcessTagger } from "./process-tagger.ts";
import { buildReputation, tableFromEntries } from "./writer.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-tagger-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Two executables: a trusted copy of sleep, and a modified one nobody vouches for.
const trusted = join(dir, "trusted-sleep");
copyFileSync("/usr/bin/sleep", trusted);
const unknown = join(dir, "unknown-sleep");
writeFileSync(unknown, Buffer.concat([readFileSync("/usr/bin/sleep"), Buffer.from("patched")]));
chmodSync(unknown, 0o755);
const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

const rep = buildReputation(
  tableFromEntries([{ sha256: sha(trusted), score: 92, class: "system" }], false),
  tableFromEntries([], true),
).bytes;
const view: ContentView = viewOverBytes({
  type: "LocalRepData",
  version: 1,
  signingTime: new Date(0).toISOString(),
  files: ["reputation.bin"],
  read: () => rep,
  readText: () => "",
});
const loaded = await localRepDataHandler.load(view, {
  log: { info() {}, warn() {} },
  events: { emit() {} },
  workDir: dir,
});
const call = async (type: string, method: string, args: unknown) => {
  expect(type).toBe("LocalRepData");
  return localRepDataHandler.call!(loaded, method, args);
};

test("new processes are tagged with the reputation of their executable; binaries are hashed once", async () => {
  const emitted: Record<string, unknown>[] = [];
  const tagger = new ProcessTagger({ call, emit: (_t, f) => emitted.push(f) });
  await tagger.sweep();
  const a = Bun.spawn([trusted, "30"]);
  const b = Bun.spawn([trusted, "30"]);
  const c = Bun.spawn([unknown, "30"]);
  try {
    expect(await tagger.sweep()).toBeGreaterThanOrEqual(3);
    expect(tagger.get(a.pid)).toMatchObject({
      exe: trusted,
      sha256: sha(trusted),
      reputation: { band: "high", score: 92, source: "hash" },
    });
    expect(tagger.get(b.pid)?.reputation?.band).toBe("high");
    expect(tagger.get(c.pid)).toMatchObject({ exe: unknown, sha256: sha(unknown), reputation: null });
    // Two processes of one binary: one hash (inode + mtime cache).
    expect([tagger.timesHashed(trusted), tagger.timesHashed(unknown)]).toEqual([1, 1]);
    expect(emitted.some((e) => e.pid === a.pid && e.band === "high")).toBe(true);
    expect(emitted.some((e) => e.pid === c.pid)).toBe(false);
    // Another sweep does not read them again, and a third process of the same binary is a cache hit.
    const d = Bun.spawn([trusted, "30"]);
    await tagger.sweep();
    expect(tagger.get(d.pid)?.reputation?.band).toBe("high");
    expect([tagger.timesHashed(trusted), tagger.timesHashed(unknown)]).toEqual([1, 1]);
    d.kill();
    await d.exited;
  } finally {
    a.kill();
    b.kill();
    c.kill();
    await Promise.all([a.exited, b.exited, c.exited]);
  }
  await tagger.sweep();
  expect(tagger.get(a.pid)).toBeUndefined();
});

test("tags say which exclusions cover a process — by image SHA-256 or executable path — from the current set", async () => {
  const ex = (kind: Exclusion["kind"], value: string, scope: Exclusion["scope"]): Exclusion => ({
    kind,
    value,
    scope,
    reason: "",
    source: "config",
  });
  let matcher = new ExclusionMatcher([ex("sha256", sha(unknown), ["behavior", "onAccess"])]);
  const emitted: Record<string, unknown>[] = [];
  const tagger = new ProcessTagger({ call, emit: (_t, f) => emitted.push(f), exclusions: () => matcher });
  await tagger.sweep();
  const a = Bun.spawn([trusted, "30"]);
  const c = Bun.spawn([unknown, "30"]);
  try {
    await tagger.sweep();
    expect(tagger.get(c.pid)).toMatchObject({ sha256: sha(unknown), excluded: ["onAccess", "behavior"] });
    expect(tagger.get(a.pid)?.excluded).toBeUndefined();
    // Not vouched for by reputation, but excluded: still announced, with the scopes.
    expect(emitted.find((e) => e.pid === c.pid)).toMatchObject({ excluded: ["onAccess", "behavior"] });
    expect(emitted.find((e) => e.pid === c.pid)?.band).toBeUndefined();
    // The exclusion set changes: the next read reflects it without re-tagging.
    matcher = new ExclusionMatcher([ex("process", dir, ["scan"])]);
    expect(tagger.get(c.pid)?.excluded).toEqual(["scan"]);
    expect(tagger.list().find((t) => t.pid === a.pid)?.excluded).toEqual(["scan"]);
  } finally {
    a.kill();
    c.kill();
    await Promise.all([a.exited, c.exited]);
  }
});
