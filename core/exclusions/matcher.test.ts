import { expect, test } from "bun:test";
import type { Exclusion } from "../exclusions-config.ts";
import { ExclusionMatcher } from "./matcher.ts";

const e = (kind: Exclusion["kind"], value: string, scope: Exclusion["scope"]): Exclusion => ({
  kind,
  value,
  scope,
  reason: "",
  source: "config",
});

const m = new ExclusionMatcher([
  e("path", "/var/lib/postgresql", ["onAccess", "scan"]),
  e("path", "/var/cache/nginx/client.tmp", ["onAccess"]),
  e("process", "/usr/lib/postgresql", ["behavior"]),
  e("process", "rsync", ["behavior", "onAccess"]),
  e("sha256", "ab".repeat(32), ["lookups"]),
  e("signer", "cd".repeat(32), ["scan"]),
]);

test("a path exclusion covers the path and what is beneath it, not its siblings", () => {
  expect(m.file("onAccess", "/var/lib/postgresql")).toBe(true);
  expect(m.file("onAccess", "/var/lib/postgresql/15/main/base/1/112")).toBe(true);
  expect(m.file("onAccess", "/var/lib/postgresql-old/x")).toBe(false);
  expect(m.file("onAccess", "/var/lib")).toBe(false);
  expect(m.file("onAccess", "/var/cache/nginx/client.tmp")).toBe(true);
  expect(m.file("onAccess", "/var/cache/nginx/other")).toBe(false);
  expect(m.file("onAccess", "relative/path")).toBe(false);
});

test("scopes are separate: an on-access exclusion does not stop a Live Protection lookup", () => {
  expect(m.file("scan", "/var/lib/postgresql/x")).toBe(true);
  expect(m.file("lookups", "/var/lib/postgresql/x")).toBe(false);
  expect(m.file("behavior", "/var/cache/nginx/client.tmp")).toBe(false);
  expect(m.file("lookups", "/x", "AB".repeat(32))).toBe(true);
  expect(m.file("scan", "/x", "AB".repeat(32))).toBe(false);
  expect(m.file("scan", "/x", undefined, "CD".repeat(32))).toBe(true);
  expect(m.digest("lookups", "ab".repeat(32))).toBe(true);
  expect(m.digest("scan", "ab".repeat(32))).toBe(false);
  expect(m.signer("scan", "cd".repeat(32))).toBe(true);
  expect(m.signer("onAccess", "cd".repeat(32))).toBe(false);
});

test("processes match by executable path (or a directory above it), name, hash or signer", () => {
  expect(m.process("behavior", { exe: "/usr/lib/postgresql/15/bin/postgres" })).toBe(true);
  expect(m.process("behavior", { exe: "/usr/bin/postgres" })).toBe(false);
  expect(m.process("behavior", { name: "rsync" })).toBe(true);
  expect(m.process("scan", { name: "rsync" })).toBe(false);
  expect(m.process("lookups", { sha256: "ab".repeat(32) })).toBe(true);
  expect(ExclusionMatcher.empty.process("behavior", { exe: "/usr/bin/x", name: "x" })).toBe(false);
});
