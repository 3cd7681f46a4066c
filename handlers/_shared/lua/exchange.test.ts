import { expect, test } from "bun:test";
import { productLibraries } from "./exchange.ts";
import { RuleLimitsSchema } from "./format.ts";

const lib = (version: number) => ({ version, modules: [], limits: RuleLimitsSchema.parse({}) });

test("the library exchange follows the two-phase switch: publish beside, withdraw the released one", () => {
  const key = `/tmp/exchange-test-${Math.random()}`;
  const seen: (number | null)[] = [];
  const unsubscribe = productLibraries.subscribe(key, (l) => seen.push(l?.version ?? null));
  const withdraw1 = productLibraries.publish(key, lib(1));
  // v2 loads beside v1 …
  const withdraw2 = productLibraries.publish(key, lib(2));
  expect(productLibraries.current(key)?.version).toBe(2);
  // … and is discarded: v1 is current again.
  withdraw2();
  expect(productLibraries.current(key)?.version).toBe(1);
  // v3 loads and commits: releasing v1 changes nothing for subscribers.
  const withdraw3 = productLibraries.publish(key, lib(3));
  withdraw1();
  expect(productLibraries.current(key)?.version).toBe(3);
  expect(seen).toEqual([1, 2, 1, 3]);
  withdraw3();
  expect(seen).toEqual([1, 2, 1, 3, null]);
  unsubscribe();
  // Other groups (work directories) are separate.
  expect(productLibraries.current(`${key}-other`)).toBeUndefined();
});
