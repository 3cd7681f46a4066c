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
import type { AlertSink } from "../../agent/alerts.ts";
import type { Agent, AgentOptions } from "../../agent/runtime.ts";
import { type AgentConfig, type AgentConfigInput, deepMerge, loadConfig } from "../../config.ts";
import { ControlClient, type RemoteAgentApi } from "../../control/client.ts";
import type { RouteExtension } from "../../control/extensions.ts";
import type { HandlerRegistry } from "../../handler/registry.ts";
import { EXIT } from "../exit-codes.ts";
import { recordedRunConfig } from "./run-config.ts";

export const agentArgs = {
  state: { type: "string", valueHint: "DIR", description: "agent state directory (default: from config)" },
  config: { type: "string", valueHint: "FILE", description: "agent config file (JSON)" },
  json: { type: "boolean", default: false, description: "print machine-readable JSON" },
} as const satisfies ArgsDef;

export interface AgentFlags {
  state?: string;
  config?: string;
}

export interface AgentWiring {
  registry(): HandlerRegistry | Promise<HandlerRegistry>;
  /** The built-in handlers one host group needs (a host process imports only those); default: registry(). */
  hostRegistry?(group: string): HandlerRegistry | Promise<HandlerRegistry>;
  alertSinks?(config: AgentConfig): AlertSink[] | Promise<AlertSink[]>;
  /** Work to run after each scheduled update cycle (RepairKit's hourly self-repair). */
  afterCycle?(): Promise<AgentOptions["afterCycle"]> | AgentOptions["afterCycle"];
  /** Feature routes contributed by handlers/plugins (mounted under /v1 by `agent run`). */
  routes?(): RouteExtension[] | Promise<RouteExtension[]>;
  /** Long-running supervisor-side features `agent run` starts after the agent and stops before it. */
  services?(ctx: ServiceContext): AgentService[] | Promise<AgentService[]>;
  /** `agent install --remove-incompatible`: fetches and runs the on-demand removal content (handlers/CRT). */
  removeIncompatible?(): Promise<RemoveIncompatible> | RemoveIncompatible;
}

/** Runs the incompatible-software pass on the running system; the result is the handler's report. */
export type RemoveIncompatible = (o: {
  repo: string;
  group: string;
  trust: string;
  dryRun: boolean;
}) => Promise<{ ok: boolean; [k: string]: unknown }>;

/** A supervisor-side feature beside the agent (scan requester, process tagger, result shippers…). */
export interface AgentService {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

export interface ServiceContext {
  config: AgentConfig;
  api: Agent;
  events: Agent["events"];
}

/** The handlers (and host groups) built into this executable, as the entry point registered them. */
export async function wiredRegistry(group?: string): Promise<HandlerRegistry> {
  const w = requireWiring();
  return group !== undefined && w.hostRegistry ? w.hostRegistry(group) : w.registry();
}

/** The feature routes the entry point registered (empty when none). */
export async function wiredRoutes(): Promise<RouteExtension[]> {
  return (await requireWiring().routes?.()) ?? [];
}

/** The services the entry point registered (empty when none), not yet started. */
export async function wiredServices(ctx: ServiceContext): Promise<AgentService[]> {
  return (await requireWiring().services?.(ctx)) ?? [];
}

/** The entry point's incompatible-software pass, or undefined when this executable has none. */
export async function wiredRemoveIncompatible(): Promise<RemoveIncompatible | undefined> {
  return requireWiring().removeIncompatible?.();
}

let wiring: AgentWiring | undefined;

export function setAgentWiring(w: AgentWiring): void {
  wiring = w;
}

function requireWiring(): AgentWiring {
  if (!wiring)
    throw new Error("agent CLI used before setAgentWiring(): the entry point must register handlers");
  return wiring;
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

/** Builds an Agent from the wiring; the caller starts and stops it. */
export async function createAgent(config: AgentConfig): Promise<Agent> {
  const w = requireWiring();
  const { Agent } = await import("../../agent/runtime.ts");
  const [registry, alertSinks, afterCycle] = await Promise.all([
    w.registry(),
    w.alertSinks?.(config) ?? [],
    w.afterCycle?.(),
  ]);
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
  opts: { readOnly?: boolean } = {},
): Promise<T> {
  const agent = await createAgent(config);
  await agent.start({ loop: false, readOnly: opts.readOnly });
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

/** The running agent's client, or undefined when none answers for this state dir. */
export async function connectIfRunning(stateDir: string): Promise<ControlClient | undefined> {
  try {
    return await ControlClient.fromStateDir(stateDir);
  } catch (e) {
    if ((e as { code?: string }).code === "CTL_NOT_RUNNING") return undefined;
    throw e;
  }
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
