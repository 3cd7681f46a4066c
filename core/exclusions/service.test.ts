import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExclusionScope } from "../exclusions-config.ts";
import { EXCLUSIONS_FILE, ExclusionService } from "./service.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const make = (config: unknown[] = []) => {
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-excl-"));
  dirs.push(stateDir);
  return new ExclusionService({
    stateDir,
    config: config as never,
    protectedPaths: [stateDir, "/opt/outpost"],
  });
};
const ex = (value: string, scope: ExclusionScope[] = ["onAccess"]) =>
  ({ kind: "path", value, scope, reason: "test" }) as const;

test("a producer's sources are replaced together; a failing rule keeps what it had", () => {
  const s = make([ex("/srv/local")]);
  s.replace("APPFEED", {
    "APPFEED:pg": { exclusions: [ex("/var/lib/postgresql")] },
    "APPFEED:nginx": { exclusions: [ex("/var/cache/nginx")] },
  });
  expect(s.list().map((e) => `${e.source} ${e.value}`)).toEqual([
    "APPFEED:nginx /var/cache/nginx",
    "APPFEED:pg /var/lib/postgresql",
    "config /srv/local",
  ]);
  s.replace("APPFEED", { "APPFEED:pg": { keep: true, error: "boom" } });
  expect(s.list().map((e) => e.source)).toEqual(["APPFEED:pg", "config"]);
  expect(s.matcher.file("onAccess", "/var/lib/postgresql/15")).toBe(true);
  expect(s.matcher.file("onAccess", "/var/cache/nginx/x")).toBe(false);
});

test("one forbidden exclusion refuses the rule's whole output; other rules are unaffected", () => {
  const s = make();
  const { refused } = s.replace("USERAPPFEED", {
    "USERAPPFEED:evil": { exclusions: [ex("/tmp/fine"), ex("/")] },
    "USERAPPFEED:ok": { exclusions: [ex("/srv/app")] },
  });
  expect(refused).toEqual([
    {
      source: "USERAPPFEED:evil",
      rule: "X2",
      reason: expect.stringContaining("/"),
      kind: "path",
      value: "/",
    },
  ]);
  expect(s.list().map((e) => e.value)).toEqual(["/srv/app"]);
  expect(s.matcher.file("onAccess", "/tmp/fine")).toBe(false);
});

test("vendor rules win a conflict: a tenant rule cannot widen a vendor exclusion's scope", () => {
  const s = make([ex("/srv/db", ["scan", "onAccess", "behavior"])]);
  s.replace("USERAPPFEED", { "USERAPPFEED:u": { exclusions: [ex("/srv/db", ["scan", "lookups"])] } });
  s.replace("APPFEED", { "APPFEED:v": { exclusions: [ex("/srv/db", ["onAccess"])] } });
  expect(s.list()).toHaveLength(1);
  expect(s.list()[0]).toMatchObject({ source: "APPFEED:v", scope: ["onAccess"] });
  expect(s.matcher.file("scan", "/srv/db/x")).toBe(false);
  expect(s.summary()).toMatchObject({ count: 1, shadowed: 2, bySource: { APPFEED: 1 } });
});

test("the generated set survives a restart; the hash identifies the set", () => {
  const s = make();
  s.replace("APPFEED", { "APPFEED:pg": { exclusions: [ex("/var/lib/postgresql")] } });
  const dir = dirs[0]!;
  const again = new ExclusionService({ stateDir: dir, config: [], protectedPaths: [dir] });
  expect(again.list()).toEqual(s.list());
  expect(again.summary().hash).toBe(s.summary().hash);
  expect(again.summary().hash).toMatch(/^[0-9a-f]{64}$/);
  // A damaged file loses nothing else and says why.
  writeFileSync(join(dir, EXCLUSIONS_FILE), "{not json");
  const damaged = new ExclusionService({ stateDir: dir, config: [ex("/srv/x")], protectedPaths: [dir] });
  expect(damaged.loadProblem).toContain(EXCLUSIONS_FILE);
  expect(damaged.list().map((e) => e.value)).toEqual(["/srv/x"]);
  expect(readFileSync(join(dir, EXCLUSIONS_FILE), "utf8")).toBe("{not json");
});

test("a held producer has no exclusions, says why, and the hold survives a restart until a run is not held", () => {
  const s = make();
  s.replace("USERAPPFEED", { "USERAPPFEED:backup": { exclusions: [ex("/srv/backup")] } });
  const hold = { code: "HND_TENANT_NOT_TRUSTED", message: "T3: no tenant key" };
  s.replace("USERAPPFEED", {}, { held: hold });
  expect(s.list()).toEqual([]);
  expect(s.held()).toEqual({ USERAPPFEED: hold });
  expect(s.summary().held).toEqual({ USERAPPFEED: "HND_TENANT_NOT_TRUSTED" });
  const stateDir = dirs.at(-1)!;
  const reopened = new ExclusionService({ stateDir, config: [], protectedPaths: [stateDir], readOnly: true });
  expect(reopened.held()).toEqual({ USERAPPFEED: hold });
  s.replace("USERAPPFEED", { "USERAPPFEED:backup": { exclusions: [ex("/srv/backup")] } });
  expect(s.held()).toEqual({});
  expect(s.summary().held).toBeUndefined();
  expect(s.matcher.file("onAccess", "/srv/backup/x")).toBe(true);
});
