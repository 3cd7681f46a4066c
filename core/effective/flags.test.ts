/** The seed's flags table (F1–F3) and the fallbacks (F4, F5), row by row. */
import { expect, test } from "bun:test";
import { combineFlag, resolveFlags } from "./flags.ts";

test("F1–F3: Off + anything → off; Available + Off → off; Available + On → on", () => {
  expect(combineFlag("off", "on")).toBe(false);
  expect(combineFlag("off", "off")).toBe(false);
  expect(combineFlag("available", "off")).toBe(false);
  expect(combineFlag("available", "on")).toBe(true);
  expect(combineFlag(undefined, "on")).toBe(false); // F5: not in the supplement
});

test("F4: unknown word, missing flag or unreachable service → last known service value, else off", () => {
  const supplement = { a: "available", b: "available", c: "available" } as const;
  const r1 = resolveFlags({ supplement, service: { a: "on", b: "on" }, lastKnown: {} });
  expect(r1.rows.map((r) => [r.flag, r.enabled, r.serviceSource])).toEqual([
    ["a", true, "service"],
    ["b", true, "service"],
    ["c", false, "default-off"],
  ]);
  // Unreachable: everything from memory.
  const r2 = resolveFlags({ supplement, service: null, lastKnown: r1.lastKnown });
  expect(r2.rows.map((r) => [r.flag, r.enabled, r.serviceSource])).toEqual([
    ["a", true, "last-known"],
    ["b", true, "last-known"],
    ["c", false, "default-off"],
  ]);
  // Reachable, but an unknown word for a and nothing for b.
  const r3 = resolveFlags({ supplement, service: { a: "maybe" }, lastKnown: r1.lastKnown });
  expect(r3.rows.find((r) => r.flag === "a")).toMatchObject({
    service: null,
    serviceSource: "last-known",
    enabled: true,
  });
  expect(r3.rows.find((r) => r.flag === "b")).toMatchObject({ serviceSource: "last-known", enabled: true });
  // No supplement installed: every flag off, whatever the service says.
  expect(resolveFlags({ supplement: null, service: { a: "on" }, lastKnown: {} }).rows[0]).toMatchObject({
    enabled: false,
  });
});
