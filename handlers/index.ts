/**
 * The content handlers built into this agent. Only entry points import this
 * file: the core knows handlers solely through the registry.
 */
import type { ContentHandler } from "../core/handler/contract.ts";
import { HandlerRegistry } from "../core/handler/registry.ts";
import { hmpaDataHandler } from "./Hmpa_data/index.ts";

export function builtinHandlers(): ContentHandler[] {
  return [hmpaDataHandler as ContentHandler];
}

export function defaultRegistry(): HandlerRegistry {
  const registry = new HandlerRegistry();
  for (const handler of builtinHandlers()) registry.register(handler);
  return registry;
}
