/** Override matching and the free-form version comparison it relies on. */
import { expect, test } from "bun:test";
import { findOverrides } from "./format.ts";
import { compareVersions } from "./version.ts";

test("free-form module versions compare the way their authors mean", () => {
  const older = [
    ["1.2", "1.10"],
    ["1.2", "1.2.1"],
    ["2.0rc1", "2.0"],
    ["2.0-beta", "2.0"],
    ["5.10.0-k", "5.11"],
    ["v3", "4"],
    ["1.0.0.18-NAPI", "1.0.0.19"],
    ["R12a", "R12b"],
  ];
  for (const [a, b] of older) {
    expect([a, b, Math.sign(compareVersions(a!, b!))]).toEqual([a, b, -1]);
    expect([b, a, Math.sign(compareVersions(b!, a!))]).toEqual([b, a, 1]);
  }
  expect(compareVersions("1.2.0", "1.2.0")).toBe(0);
  expect(compareVersions("V1.2", "v1.2")).toBe(0);
});

test("an entry applies to a loaded module older than fixedIn, or any version without fixedIn", () => {
  const entries = [
    { module: "acme_filter", reason: "BSOD-like hangs", fixedIn: "4.2" },
    { module: "old-shaper", reason: "drops queued packets" },
  ];
  expect(findOverrides(entries, [{ name: "acme_filter", version: "4.1.9" }])).toEqual([
    { module: "acme_filter", version: "4.1.9", reason: "BSOD-like hangs", fixedIn: "4.2" },
  ]);
  expect(findOverrides(entries, [{ name: "acme_filter", version: "4.2" }])).toEqual([]);
  // No published version: cannot prove it is the fixed one.
  expect(findOverrides(entries, [{ name: "acme_filter", version: null }])).toHaveLength(1);
  // '-' and '_' are the same in module names.
  expect(findOverrides(entries, [{ name: "old_shaper", version: "9" }])[0]?.reason).toBe(
    "drops queued packets",
  );
  expect(findOverrides(entries, [{ name: "other", version: "1" }])).toEqual([]);
});
