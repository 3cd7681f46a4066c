import { expect, test } from "bun:test";
import { LuaSandbox, luaRef } from "./sandbox.ts";

test("smoke", async () => {
  const sb = await LuaSandbox.create();
  const [rt] = sb.runChunkRefs(`
    local S = ...
    local R = {}
    function R.run(src, budget)
      local env = S.new_env({})
      local fn, err = S.compile("r", src, env)
      if not fn then return false, err end
      local u = S.new_unit("r", { instructions = budget or 100000, call_memory_kb = 1024, output_bytes = 100, max_faults = 3 })
      local ok, res = S.invoke(u, fn)
      return ok, res, u.calls, u.time, u.faults
    end
    return R`, "=rt", [luaRef(sb.internals)]);
  const run = (src: string) => sb.call(rt!, "run", src);
  console.log(run("return 1 + 1"));
  console.log(run("while true do end"));
  console.log(run("local s = 'x' while true do s = s .. s end"));
  console.log(run("local t = {} for i = 1, 1e9 do t[i] = i end"));
  console.log(run("return io, os, require, load, debug, dofile, loadstring, string.dump, getmetatable('')"));
  console.log(run("return string.find(('a'):rep(5000), '.-.-.-b')"));
  console.log(run("return string.rep('x', 1e9)"));
  console.log(run("return string.rep('', 1e15)"));
  console.log(run("local function f() return f() + 1 end return f()"));
  console.log(run("local n = 0 while true do pcall(function() while true do n = n + 1 end end) end"));
  console.log(run("local co = coroutine.wrap(function() while true do end end) co()"));
  console.log(run("local function f(s) return (s:gsub('.', f)) end return f('aaaa')"));
  console.log(run("local function f() return pcall(f) end return f()"));
  console.log(run("local function f() local co = coroutine.create(f) return coroutine.resume(co) end return f()"));
  console.log(run("return os.clock and 1, collectgarbage('count') > 0, pcall(collectgarbage, 'stop')"));
  console.log(sb.memoryBytes());
  sb.close();
});
