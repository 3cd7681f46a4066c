/**
 * How agent-side commands reach an agent. The rule is the same everywhere:
 * if the state dir advertises a control plane and the agent answers, talk
 * to it; otherwise open the state dir in-process (an Agent without its
 * update loop) and stop it again afterwards. The agent lock makes the
 * offline path safe: it fails with AGENT_LOCKED rather than sharing a state
 * dir with a live agent it could not reach.
 *
 * The core never imports concrete handlers or sinks, so the entry point
 * supplies them once through `setAgentWiring`.
 */
import { resolve } from "node:path";
import type { ArgsDef, CommandDef } from "citty";
import type { Agent, AgentOptions } from "../../agent/runtime.ts";
import { type AgentConfig, type AgentConfigInput, deepMerge, loadConfig } from "../../config.ts";
import type { RemoteAgentApi } from "../../control/client.ts";
import { EXIT } from "../exit-codes.ts";
import { agentArgs, connectIfRunning } from "./online.ts";
import { recordedRunConfig } from "./run-config.ts";
import { requireWiring } from "./wiring.ts";

export { agentArgs, connectIfRunning } from "./online.ts";

export {
  type AgentService,
  type AgentWiring,
  type RemoveIncompatible,
  type ServiceContext,
  setAgentWiring,
  wiredRegistry,
  wiredRemoveIncompatible,
  wiredRoutes,
  wiredServices,
} from "./wiring.ts";

export interface AgentFlags {
  state?: string;
  config?: string;
}

/** Config file (if any) < explicit flags. Relative paths are taken from the caller's cwd. */
export function loadAgentConfig(flags: AgentFlags, overrides: AgentConfigInput = {}): AgentConfig {
  const state = flags.state ? { stateDir: resolve(flags.state) } : {};
  // Only --state: use the config `agent run` recorded there, so offline commands see what the agent sees.
  const recorded = !flags.config && flags.state ? recordedRunConfig(resolve(flags.state)) : undefined;
  return loadConfig({
    file: flags.config ?? recorded?.config ?? undefined,
    overrides: deepMerge(recorded?.overrides ?? {}, { ...overrides, ...state }) as AgentConfigInput,
  });
}

/** The config file offline commands use: --config, or the one `agent run` recorded for --state. */
export function agentConfigFile(flags: AgentFlags): string | null {
  if (flags.config) return resolve(flags.config);
  return flags.state ? (recordedRunConfig(resolve(flags.state))?.config ?? null) : null;
}

export interface CreateAgentOptions {
  /**
   * Import a handler's code only when something runs it in this process. With host processes
   * (the default isolation) nothing does: a one-shot command then skips evaluating every
   * handler's modules (`agent scan`: bench/scan-startup.ts), and the supervisor (`agent run`,
   * which passes true) holds none of them for its whole life: 3,793 → 2,933 zod schemas, and in
   * the compiled demo agent 63.5 → 61.7 MB of heap used and 38.8 → 37.2 MiB of anonymous
   * memory (two demos side by side). In-process isolation loads them all. Default: false for
   * createAgent, true for withOfflineAgent (one-shot commands).
   */
  deferHandlerCode?: boolean;
  /**
   * With deferred handler code: the host groups this command uses. The agent knows only their
   * handlers (and those its effective config is computed from), so it loads and starts hosts for
   * nothing else; other installed content is left as it is, neither loaded nor touched.
   * Default: every group.
   */
  groups?: readonly string[];
  /**
   * Recompute the effective config at start from the contributing handlers (default), or keep
   * the one the last agent applied (`false`: the contributors are then not loaded either).
   */
  applyEffective?: boolean;
}

/** Builds an Agent from the wiring; the caller starts and stops it. */
export async function createAgent(config: AgentConfig, opts: CreateAgentOptions = {}): Promise<Agent> {
  const w = requireWiring();
  const { Agent } = await import("../../agent/runtime.ts");
  const deferred = opts.deferHandlerCode && config.hosts.isolation !== "in-process" && w.deferredRegistry;
  const [registry, alertSinks] = await Promise.all([
    deferred
      ? deferred(
          opts.groups ? { groups: opts.groups, contributors: opts.applyEffective !== false } : undefined,
        )
      : w.registry(),
    w.alertSinks?.(config) ?? [],
  ]);
  // The hook's code (RepairKit: the Lua engine) is imported when the first scheduled cycle ends.
  const hook = w.afterCycle;
  const afterCycle: AgentOptions["afterCycle"] = hook
    ? async (agent, report) => (await hook())?.(agent, report)
    : undefined;
  return new Agent({ config, registry, alertSinks, afterCycle });
}

/**
 * Runs `fn` against an in-process agent on `config.stateDir`, without the
 * update loop. `readOnly` (status, content list) opens it without the lock
 * file, clean-up or repairs, so the state dir is unchanged afterwards.
 */
export async function withOfflineAgent<T>(
  config: AgentConfig,
  fn: (agent: Agent) => Promise<T>,
  opts: { readOnly?: boolean } & CreateAgentOptions = {},
): Promise<T> {
  const agent = await createAgent(config, {
    deferHandlerCode: opts.deferHandlerCode ?? true,
    ...(opts.groups ? { groups: opts.groups } : {}),
    ...(opts.applyEffective !== undefined ? { applyEffective: opts.applyEffective } : {}),
  });
  await agent.start({ loop: false, readOnly: opts.readOnly, applyEffective: opts.applyEffective });
  try {
    return await fn(agent);
  } finally {
    await agent.stop();
  }
}

export function asRemote(agent: Agent): RemoteAgentApi {
  return {
    status: async () => agent.status(),
    content: async () => agent.content(),
    update: () => agent.update(),
    rollback: (type) => agent.rollback(type),
    ack: (type) => agent.ack(type),
    call: (type, method, args) => agent.call(type, method, args),
  };
}

export type AgentMode = "online" | "offline";

/** The fallback rule: running agent if it answers, in-process agent otherwise. */
export async function withAgentApi<T>(
  flags: AgentFlags,
  fn: (api: RemoteAgentApi, mode: AgentMode) => Promise<T>,
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  const config = loadAgentConfig(flags);
  const client = await connectIfRunning(config.stateDir);
  if (client) return fn(client, "online");
  return withOfflineAgent(config, (agent) => fn(asRemote(agent), "offline"), opts);
}

/**
 * Calls a handler's API on the agent that owns `stateDir` (undefined: the
 * configured one), online or offline — what `agent hmpa check` and other
 * handler commands use.
 */
export function callHandler(
  stateDir: string | undefined,
  type: string,
  method: string,
  args: unknown,
  opts: { configFile?: string } = {},
): Promise<unknown> {
  // Offline, an inquiry opens the state dir read-only: looking must not change what is looked at
  // (issue 12 item 15; hosts get private work dirs, core/agent/read-only-view.ts).
  return withAgentApi({ state: stateDir, config: opts.configFile }, (api) => api.call(type, method, args), {
    readOnly: true,
  });
}

export type BoundCallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

// biome-ignore lint/suspicious/noExplicitAny: wraps command trees of any argument shape
type AnyCommand = CommandDef<any>;

/**
 * Adapts a handler's command tree (built against a state-less
 * `callHandler(type, method, args)`) to the agent CLI: every command in the
 * tree gains --state and --config, and calls go to the agent they select.
 */
export function handlerCommand(make: (call: BoundCallHandler) => AnyCommand): AnyCommand {
  let flags: AgentFlags = {};
  const bound: BoundCallHandler = (type, method, args) =>
    callHandler(flags.state, type, method, args, { configFile: flags.config });
  return withAgentFlags(make(bound), (f) => {
    flags = f;
  });
}

function withAgentFlags(cmd: AnyCommand, capture: (f: AgentFlags) => void): AnyCommand {
  const resolveValue = async <T>(v: T | Promise<T> | (() => T | Promise<T>)): Promise<T> =>
    typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
  return {
    ...cmd,
    args: async () => ({ ...agentArgs, ...((cmd.args ? await resolveValue(cmd.args) : {}) as ArgsDef) }),
    setup: async (ctx) => {
      capture({ state: ctx.args.state as string | undefined, config: ctx.args.config as string | undefined });
      await cmd.setup?.(ctx);
    },
    ...(cmd.subCommands
      ? {
          subCommands: async () => {
            const subs = await resolveValue(cmd.subCommands!);
            const wrapped: Record<string, AnyCommand> = {};
            for (const [name, sub] of Object.entries(subs)) {
              wrapped[name] = withAgentFlags(await resolveValue(sub as AnyCommand), capture);
            }
            return wrapped;
          },
        }
      : {}),
  };
}

/** Exit code for an update report: content rejected or the cycle failed → 3. */
export function exitCodeForReport(report: { ok: boolean }): number {
  return report.ok ? EXIT.OK : EXIT.CONTENT;
}
