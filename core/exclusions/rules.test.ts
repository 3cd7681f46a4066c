import { expect, test } from "bun:test";
import { checkExclusion } from "./rules.ts";

const PROTECTED = ["/opt/outpost/bin/agent", "/opt/outpost", "/var/lib/outpost"];
const rule = (input: unknown) => {
  const r = checkExclusion(input, "APPFEED:t", PROTECTED);
  return "ok" in r ? "ok" : r.refused.rule;
};
const path = (value: string, kind = "path") => ({ kind, value, scope: ["onAccess"], reason: "r" });

test("an ordinary exclusion is accepted, normalised and labelled with its source", () => {
  expect(checkExclusion(path("/var/lib/postgresql"), "APPFEED:pg", PROTECTED)).toEqual({
    ok: {
      kind: "path",
      value: "/var/lib/postgresql",
      scope: ["onAccess"],
      reason: "r",
      source: "APPFEED:pg",
    },
  });
  const h = checkExclusion({ kind: "sha256", value: "A".repeat(64), scope: ["scan"] }, "config", []);
  expect("ok" in h && h.ok.value).toBe("a".repeat(64));
});

test("X0: unknown kinds, scopes and fields are refused", () => {
  expect(rule({ kind: "registry", value: "x", scope: ["scan"] })).toBe("X0");
  expect(rule({ kind: "path", value: "/a", scope: ["everything"] })).toBe("X0");
  expect(rule({ kind: "path", value: "/a", scope: [] })).toBe("X0");
  expect(rule({ ...path("/a"), extra: 1 })).toBe("X0");
});

test("X1: relative, dotted, doubled or trailing-slash paths are refused", () => {
  for (const v of ["var/lib", "/var/../etc", "/var/./lib", "/var//lib", "/var/lib/", "/a\0b"]) {
    expect(rule(path(v))).toBe("X1");
  }
  expect(rule(path("bin/x", "process"))).toBe("ok"); // a bare name: a process name, not a path
});

test("X2: excluding / is refused, for paths and process paths", () => {
  expect(rule(path("/"))).toBe("X2");
  expect(rule(path("/", "process"))).toBe("X2");
});

test("X3: the agent's own binaries and state are never excluded, from above or below", () => {
  expect(rule(path("/opt/outpost/bin/agent", "process"))).toBe("X3");
  expect(rule(path("/opt/outpost/bin"))).toBe("X3");
  expect(rule(path("/opt"))).toBe("X3");
  expect(rule(path("/var/lib/outpost/content"))).toBe("X3");
  expect(rule(path("/var/lib/outpost2"))).toBe("ok");
});

test("X4/X5/X6: hashes, signer thumbprints, names and scopes", () => {
  expect(rule({ kind: "sha256", value: "abc", scope: ["scan"] })).toBe("X4");
  // A signer is its certificate's SHA-256: a name (forgeable by anyone who issues a certificate) is refused.
  expect(rule({ kind: "signer", value: "Example Corp", scope: ["scan"] })).toBe("X4");
  expect(rule({ kind: "signer", value: "AB".repeat(32), scope: ["scan"] })).toBe("ok");
  expect(checkExclusion({ kind: "signer", value: "AB".repeat(32), scope: ["scan"] }, "config", [])).toEqual({
    ok: { kind: "signer", value: "ab".repeat(32), scope: ["scan"], reason: "", source: "config" },
  });
  expect(rule({ kind: "process", value: "\u0001evil", scope: ["scan"] })).toBe("X5");
  expect(rule({ kind: "process", value: "x".repeat(257), scope: ["scan"] })).toBe("X5");
  expect(rule({ kind: "path", value: "/a", scope: ["scan", "scan"] })).toBe("X6");
});
