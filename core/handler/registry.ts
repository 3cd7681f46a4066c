/**
 * Handlers register by content type, as osquery plugins register by name.
 * The entry points (bin/) register the concrete handlers and the host
 * groups they run in; the core looks them up here and never imports one.
 *
 * A handler may be registered with the specifier of the module that
 * exports it (`register(handler, import.meta.url)`): a host process that
 * does not have the handler built in (tests, plugins) imports that module
 * to run it. Built-in handlers need none — the host process is the same
 * executable and registers them itself.
 */

import { byCodeUnit } from "../compare.ts";
import { HandlerError } from "../errors.ts";
import type { GroupPolicy } from "../host/policy.ts";
import type { ContentHandler } from "./contract.ts";

export class HandlerRegistry {
  private readonly byType = new Map<string, ContentHandler<unknown>>();
  private readonly modules = new Map<string, string>();
  private readonly groupsByName = new Map<string, GroupPolicy>();

  register(handler: ContentHandler<unknown>, module?: string): this {
    const name = handler.manifest.name;
    if (this.byType.has(name)) throw new HandlerError("HND_DUPLICATE", `handler ${name} registered twice`);
    this.byType.set(name, handler);
    if (module) this.modules.set(name, module);
    return this;
  }

  /** Registers a host group's policy (handlers/groups.ts for the built-in ones). */
  registerGroup(policy: GroupPolicy): this {
    if (this.groupsByName.has(policy.name)) {
      throw new HandlerError("HND_DUPLICATE", `host group ${policy.name} registered twice`);
    }
    this.groupsByName.set(policy.name, policy);
    return this;
  }

  get(type: string): ContentHandler<unknown> | undefined {
    return this.byType.get(type);
  }

  require(type: string): ContentHandler<unknown> {
    const h = this.byType.get(type);
    if (!h) throw new HandlerError("HND_UNKNOWN_TYPE", `no handler for content type ${type}`);
    return h;
  }

  types(): string[] {
    return [...this.byType.keys()].sort();
  }

  /** The module that exports the handler for `type`, when it was registered with one. */
  moduleOf(type: string): string | undefined {
    return this.modules.get(type);
  }

  group(name: string): GroupPolicy | undefined {
    return this.groupsByName.get(name);
  }

  groups(): GroupPolicy[] {
    return [...this.groupsByName.values()].sort((a, b) => byCodeUnit(a.name, b.name));
  }
}
