import { afterEach, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { disposeAgent, makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { RuleLimitsSchema } from "../_shared/lua/format.ts";
import { probeLibrary } from "../_shared/lua/library.ts";
import { type LuaTestAgent, rulesPayload, startLuaAgent, testKey } from "../_shared/lua/testkit.ts";
import { productRulesFeedHandler } from "./index.ts";

setDefaultTimeout(30_000);
const limits = RuleLimitsSchema.parse({ instructions: 100_000 });
const mod = (name: string, source: string) => ({ name, file: `lua/${name}.lua.enc`, source });

test("a library is proven on its own: modules see earlier ones, must return tables, and are metered", async () => {
  expect(
    await probeLibrary({
      version: 1,
      limits,
      modules: [
        mod("a", "return { one = function() return 1 end }"),
        mod("b", "local a = product.a return { two = function() return a.one() + 1 end }"),
      ],
    }),
  ).toEqual([
    { module: "a", functions: ["one"] },
    { module: "b", functions: ["two"] },
  ]);
  const fails = async (source: string) =>
    probeLibrary({ version: 1, limits, modules: [mod("bad", source)] }).then(
      () => "loaded",
      (e) => `${e.code}: ${e.message}`,
    );
  expect(await fails("return 42")).toMatch(
    /^HND_PRODUCT_LOAD_FAILED: lua\/bad\.lua\.enc: .*must return a table/,
  );
  expect(await fails("while true do end")).toMatch(/instruction budget exceeded/);
  expect(await fails("return product.missing.x")).toMatch(/attempt to index a nil value/);
});

let vendor: Vendor;
let t: LuaTestAgent | undefined;
beforeEach(async () => {
  vendor = await makeVendor();
});
afterEach(async () => {
  await disposeAgent(t);
  t = undefined;
  vendor.cleanup();
});

test("a library that does not load is rejected naming the module; the previous one stays published", async () => {
  const key = testKey();
  await vendor.release(
    "ProductRulesFeed",
    1,
    rulesPayload("ProductRulesFeed", { util: "return { f = function() return 1 end }" }, key),
  );
  t = await startLuaAgent(vendor, [productRulesFeedHandler] as ContentHandler[], { key });
  expect((await t.agent.update()).installed).toHaveLength(1);
  await vendor.release(
    "ProductRulesFeed",
    2,
    rulesPayload("ProductRulesFeed", { util: "error('broken library')" }, key),
  );
  const report = await t.agent.update();
  expect(report.rejected[0]).toMatchObject({ code: "HND_PRODUCT_LOAD_FAILED" });
  expect(report.rejected[0]!.reason).toContain("lua/util.lua.enc");
  expect(await t.agent.call("ProductRulesFeed", "functions", {})).toEqual({
    version: 1,
    modules: [{ module: "util", functions: ["f"] }],
  });
});
