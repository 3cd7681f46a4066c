/**
 * Handlers register by content type, as osquery plugins register by name.
 * The entry points (bin/) register the concrete handlers; the core looks them
 * up here and never imports one.
 */
import { HandlerError } from "../errors.ts";
import type { ContentHandler } from "./contract.ts";

export class HandlerRegistry {
  private readonly byType = new Map<string, ContentHandler<unknown>>();

  register(handler: ContentHandler<unknown>): this {
    const name = handler.manifest.name;
    if (this.byType.has(name)) throw new HandlerError("HND_DUPLICATE", `handler ${name} registered twice`);
    this.byType.set(name, handler);
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
}
