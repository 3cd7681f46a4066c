import { afterAll, expect, test } from "bun:test";
import { RuleLimitsSchema } from "../_shared/lua/format.ts";
import { BatchEncoder, MAX_SCHEMAS } from "./codec.ts";
import { BehaviorEngine } from "./engine.ts";

const engines: BehaviorEngine[] = [];
afterAll(() => {
  for (const e of engines) e.close();
});

test("every field kind arrives in Lua unchanged, across schemas and batch boundaries", async () => {
  const rule = `on("t", function(e)
    local keys = {}
    for k in pairs(e) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(e[k]) .. ":" .. tostring(math.type(e[k])) .. type(e[k]) end
    detect{ title = "echo", dump = table.concat(parts, ",") }
  end)`;
  const engine = await BehaviorEngine.create(
    [{ name: "echo", file: "echo", source: rule }],
    RuleLimitsSchema.parse({ outputBytes: 1024 * 1024 }),
    null,
    { batchSize: 2 },
  );
  engines.push(engine);
  const events = [
    { type: "t", time: 1, s: "héllo\u0000wörld", n: -(2 ** 40), f: 1.5, b: true },
    { type: "t", time: 2, s: "", b: false, big: Number.MAX_SAFE_INTEGER },
    { type: "t", time: 3, s: "x".repeat(100_000) },
  ];
  const r = engine.process(events);
  const dumps = r.detections.map((d) => d.fields.dump as string);
  expect(dumps[0]).toBe(
    "b=true:nilboolean,f=1.5:floatnumber,n=-1099511627776:integernumber,s=héllo\u0000wörld:nilstring,time=1:integernumber,type=t:nilstring",
  );
  expect(dumps[1]).toBe(
    "b=false:nilboolean,big=9007199254740991:integernumber,s=:nilstring,time=2:integernumber,type=t:nilstring",
  );
  expect(dumps[2]!.length).toBeGreaterThan(100_000);
  expect(r.detections.map((d) => d.event.time)).toEqual([1, 2, 3]);
});

test("the schema table is bounded: events of new shapes past the limit are dropped, not crashed on", () => {
  const enc = new BatchEncoder();
  for (let i = 0; i < MAX_SCHEMAS; i++) expect(enc.add({ type: "t", [`f${i}`]: 1 }, null)).toBe(true);
  expect(enc.add({ type: "t", other: 1 }, null)).toBe(false);
  expect(enc.add({ type: "t", f0: 2 }, null)).toBe(true);
  expect(enc.take().newSchemas).toHaveLength(MAX_SCHEMAS);
});

test("events of one type whose shapes alternate, and strings that turn non-ASCII midway, decode exactly", async () => {
  const engine = await BehaviorEngine.create(
    [
      {
        name: "echo",
        file: "echo",
        source: `on("t", function(e) detect{ title = "e", v = tostring(e.v) .. ":" .. type(e.v), w = tostring(e.w) } end)`,
      },
    ],
    RuleLimitsSchema.parse({}),
    null,
    { batchSize: 3 },
  );
  engines.push(engine);
  const events = [
    { type: "t", time: 1, v: 1 },
    { type: "t", time: 2, v: "path/é/😀/x" },
    { type: "t", time: 3, v: 1.25 },
    { type: "t", time: 4, v: 2 },
    { type: "t", time: 5, w: true, v: "a" },
    { type: "t", time: 6, v: false },
    { type: "t", time: 7, v: "plain" },
  ];
  const got = engine.process(events).detections.map((d) => [d.fields.v, d.fields.w]);
  expect(got).toEqual([
    ["1:number", "nil"],
    ["path/é/😀/x:string", "nil"],
    ["1.25:number", "nil"],
    ["2:number", "nil"],
    ["a:string", "true"],
    ["false:boolean", "nil"],
    ["plain:string", "nil"],
  ]);
});
