/**
 * Runs content handlers and owns what they have loaded. The switch to new
 * content is two-phase: the new content is validated and loaded next to the
 * live one; only when that succeeds does the store commit the pointer and
 * the host swap the live object. So the previous content serves until the
 * new one is proven good, and a load failure leaves nothing to undo.
 *
 * This host runs handlers in-process; the handler-host issue moves groups
 * into separate, privilege-dropped processes behind the same interface.
 */
import { mkdirSync } from "node:fs";
import { describeError, HandlerError, isOutpostError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { createCapabilities } from "./capabilities.ts";
import type { Capabilities, ContentHandler, ContentView } from "./contract.ts";
import type { HandlerRegistry } from "./registry.ts";

export type HandlerState = "loaded" | "not-installed" | "failed" | "unloaded";

interface Slot {
  handler: ContentHandler<unknown>;
  state: HandlerState;
  version: number | null;
  live?: unknown;
  error?: { code: string; message: string };
}

export interface Prepared {
  readonly type: string;
  readonly version: number;
  readonly live: unknown;
}

export class InProcessHost {
  private readonly slots = new Map<string, Slot>();

  constructor(
    registry: HandlerRegistry,
    private readonly log: Logger,
    private readonly env: {
      /** Private writable directory of a host group. */
      workDirFor: (group: string) => string;
      emit: (type: string, fields?: Record<string, unknown>) => void;
      agentCall?: (method: string, args?: unknown) => Promise<unknown>;
    },
  ) {
    for (const type of registry.types())
      this.slots.set(type, { handler: registry.require(type), state: "not-installed", version: null });
  }

  private slot(type: string): Slot {
    const s = this.slots.get(type);
    if (!s) throw new HandlerError("HND_UNKNOWN_TYPE", `no handler for content type ${type}`);
    return s;
  }

  private caps(type: string): Capabilities {
    const { handler } = this.slot(type);
    const log = this.log.child({ handler: type });
    const workDir = this.env.workDirFor(handler.manifest.group);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    return createCapabilities(handler.manifest, {
      log: { info: (m, f) => log.info(m, f), warn: (m, f) => log.warn(m, f) },
      emit: this.env.emit,
      workDir,
      agentCall: this.env.agentCall,
    });
  }

  async validate(type: string, view: ContentView): Promise<void> {
    const { handler } = this.slot(type);
    try {
      await handler.validate(view);
    } catch (e) {
      throw asHandlerError(e, "HND_VALIDATION_FAILED", type, view);
    }
  }

  /** Loads content beside whatever is live; the live object is untouched. */
  async prepare(type: string, view: ContentView): Promise<Prepared> {
    const { handler } = this.slot(type);
    try {
      const live = await handler.load(view, this.caps(type));
      return { type, version: view.version, live };
    } catch (e) {
      throw asHandlerError(e, "HND_LOAD_FAILED", type, view);
    }
  }

  /** Makes prepared content live and releases the previous one. Call only after the store committed. */
  async commit(prepared: Prepared): Promise<void> {
    const slot = this.slot(prepared.type);
    const old = slot.live;
    const hadOld = slot.state === "loaded";
    slot.live = prepared.live;
    slot.version = prepared.version;
    slot.state = "loaded";
    slot.error = undefined;
    if (hadOld) await this.release(slot, old);
  }

  /** Drops prepared content that will not go live (validation or commit failed). */
  async discard(prepared: Prepared): Promise<void> {
    await this.release(this.slot(prepared.type), prepared.live);
  }

  markFailed(type: string, error: unknown): void {
    const slot = this.slot(type);
    if (slot.state !== "loaded") {
      slot.state = "failed";
      slot.error = describeError(error);
    }
  }

  async unloadAll(): Promise<void> {
    for (const slot of this.slots.values()) {
      if (slot.state === "loaded") await this.release(slot, slot.live);
      slot.live = undefined;
      slot.state = slot.state === "loaded" ? "unloaded" : slot.state;
    }
  }

  private async release(slot: Slot, live: unknown): Promise<void> {
    try {
      await slot.handler.unload?.(live);
    } catch (e) {
      this.log.warn("handler unload failed", { handler: slot.handler.manifest.name, ...describeError(e) });
    }
  }

  state(type: string): {
    state: HandlerState;
    version: number | null;
    status?: Record<string, unknown>;
    error?: { code: string; message: string };
  } {
    const slot = this.slot(type);
    let status: Record<string, unknown> | undefined;
    if (slot.state === "loaded" && slot.handler.status) {
      try {
        status = slot.handler.status(slot.live);
      } catch (e) {
        status = { statusError: describeError(e).message };
      }
    }
    return { state: slot.state, version: slot.version, status, error: slot.error };
  }

  async call(type: string, method: string, args: unknown): Promise<unknown> {
    const slot = this.slot(type);
    if (slot.state !== "loaded") {
      throw new HandlerError("HND_NOT_LOADED", `${type} has no content loaded (${slot.state})`);
    }
    if (!slot.handler.call) throw new HandlerError("HND_NO_API", `${type} offers no API`);
    try {
      return await slot.handler.call(slot.live, method, args);
    } catch (e) {
      throw asHandlerError(e, "HND_CALL_FAILED", type);
    }
  }
}

function asHandlerError(e: unknown, code: string, type: string, view?: ContentView): HandlerError {
  if (e instanceof HandlerError) return e;
  const where = view ? `${type} v${view.version}` : type;
  const d = describeError(e);
  return new HandlerError(isOutpostError(e) ? d.code : code, `${where}: ${d.message}`, {
    file: d.file,
    cause: e,
  });
}
