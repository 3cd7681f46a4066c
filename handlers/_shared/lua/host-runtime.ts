/**
 * Opening a sandbox for a host-API runtime — RepairKit's checks, APPFEED's
 * detectors: Lua rules that call agent functions rather than receive
 * events. The runtime chunk gets the sandbox internals and the host
 * functions, then loads every rule file; one that fails to load fails the
 * whole ruleset with its file named, under the caller's error code, and the
 * sandbox is closed.
 */
import { HandlerError } from "../../../core/errors.ts";
import type { RuleLimits, RuleSource } from "./format.ts";
import { type HostFunction, type HostFunctionHandle, LuaSandbox, luaRef } from "./sandbox.ts";

export async function openHostRuntime(o: {
  ruleset: { rules: RuleSource[]; limits: RuleLimits };
  runtimeSource: string;
  /** Chunk name in Lua tracebacks, e.g. "=repair-runtime". */
  chunkName: string;
  /** HandlerError code for a rule file that does not load. */
  loadFailedCode: string;
  host: (fn: (f: HostFunction) => HostFunctionHandle) => Record<string, HostFunctionHandle>;
}): Promise<{ sandbox: LuaSandbox; rt: number }> {
  const { ruleset } = o;
  const sandbox = await LuaSandbox.create({ stateMemoryBytes: ruleset.limits.stateMemoryMb * 1024 * 1024 });
  try {
    const host = o.host((f) => sandbox.hostFunction(f));
    const [rt] = sandbox.runChunkRefs(o.runtimeSource, o.chunkName, [luaRef(sandbox.internals), host]);
    const failure = sandbox.call(rt!, "load", ruleset.rules, ruleset.limits)[0] as {
      rule: string;
      message: string;
    } | null;
    if (failure) {
      const file = ruleset.rules.find((r) => r.name === failure.rule)?.file;
      throw new HandlerError(o.loadFailedCode, `${file ?? failure.rule}: ${failure.message}`, { file });
    }
    return { sandbox, rt: rt! };
  } catch (e) {
    sandbox.close();
    throw e;
  }
}
