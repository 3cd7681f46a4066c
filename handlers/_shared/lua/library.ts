/**
 * Loads a ProductRulesFeed library into a scratch sandbox: proves the
 * modules compile, run within their limits and return tables, and lists
 * the functions they export. ProductRulesFeed does this before publishing,
 * so Behavior never receives a library that cannot load on its own.
 */

import { byCodeUnit } from "../../../core/compare.ts";
import { HandlerError } from "../../../core/errors.ts";
import type { LibraryModules } from "./format.ts";
import { LuaSandbox, luaRef } from "./sandbox.ts";

const PROBE = `
local S = ...
local lib = {}
local P = {}
function P.load(modules, l)
  local units, failure = S.load_modules(lib, modules, S.to_limits(l), "product")
  if not units then return failure end
  return nil
end
function P.functions()
  local out = {}
  for name, mod in S.pairs(lib) do
    local fns = {}
    for k, v in S.pairs(mod) do
      if S.type(v) == "function" then fns[#fns + 1] = S.tostring(k) end
    end
    S.sort(fns)
    out[#out + 1] = { module = name, functions = fns }
  end
  return out
end
return P`;

export interface LibraryExports {
  module: string;
  functions: string[];
}

export async function probeLibrary(library: LibraryModules): Promise<LibraryExports[]> {
  const sandbox = await LuaSandbox.create({ stateMemoryBytes: library.limits.stateMemoryMb * 1024 * 1024 });
  try {
    const [probe] = sandbox.runChunkRefs(PROBE, "=product-probe", [luaRef(sandbox.internals)]);
    const failure = sandbox.call(probe!, "load", library.modules, library.limits)[0] as {
      name: string;
      message: string;
    } | null;
    if (failure) {
      const file = library.modules.find((m) => m.name === failure.name)?.file;
      throw new HandlerError(
        "HND_PRODUCT_LOAD_FAILED",
        `${file ?? failure.name}: library module ${failure.name} failed to load: ${failure.message}`,
        { file },
      );
    }
    return (sandbox.call(probe!, "functions")[0] as LibraryExports[]).sort((a, b) =>
      byCodeUnit(a.module, b.module),
    );
  } finally {
    sandbox.close();
  }
}
