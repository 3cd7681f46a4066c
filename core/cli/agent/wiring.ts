/**
 * What the entry point wires into the agent CLI: the handlers, sinks, routes
 * and services the core must not import itself (`setAgentWiring`, once, in
 * bin/). Apart from session.ts so that processes which need only the wiring
 * — a host process asking for its group's handlers — do not evaluate the
 * config schemas and the control client that session.ts brings
 * (bench/scan-startup.ts).
 */
import type { AlertSink } from "../../agent/alerts.ts";
import type { Agent, AgentOptions } from "../../agent/runtime.ts";
import type { AgentConfig } from "../../config.ts";
import type { RouteExtension } from "../../control/extensions.ts";
import type { HandlerRegistry } from "../../handler/registry.ts";

export interface AgentWiring {
  registry(): HandlerRegistry | Promise<HandlerRegistry>;
  /**
   * The same handlers known by their manifests, each one's code imported on first use
   * (handlers/manifests.ts): enough for a supervisor whose handlers all run in host processes,
   * which import their own code. `only.groups`: just those groups' handlers, plus (unless
   * `only.contributors` is false) the ones the agent's own state is computed from
   * (handlers/manifests.ts). Default: registry().
   */
  deferredRegistry?(only?: {
    groups?: readonly string[];
    contributors?: boolean;
  }): HandlerRegistry | Promise<HandlerRegistry>;
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

export function requireWiring(): AgentWiring {
  if (!wiring)
    throw new Error("agent CLI used before setAgentWiring(): the entry point must register handlers");
  return wiring;
}
