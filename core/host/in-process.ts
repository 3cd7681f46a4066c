/**
 * Runs content handlers and owns what they have loaded. The switch to new
 * content is two-phase: the new content is validated and loaded next to the
 * live one; only when that succeeds does the store commit the pointer and
 * the host swap the live object. So the previous content serves until the
 * new one is proven good, and a load failure leaves nothing to undo.
 *
 * `HandlerHost` (core/handler/host-contract.ts) is that contract. Two implementations: `HostManager`
 * (core/host/manager.ts, the default) runs each host group in its own
 * sandboxed process; `InProcessHost` (here) runs handlers inside the agent,
 * for unit tests and deployments that configure `hosts.isolation:
 * "in-process"`. Both refuse a handler whose privileges exceed its group's
 * (rule G1 in core/host/policy.ts) before it sees any content.
 */
import { mkdirSync } from "node:fs";
import type { HostStatus } from "../agent/api.ts";
import { describeError, HandlerError, isOutpostError } from "../errors.ts";
import { createCapabilities } from "../handler/capabilities.ts";
import type { Capabilities, ContentHandler, ContentView } from "../handler/contract.ts";
import type { HandlerHost, HandlerSlotState, HandlerState, Prepared } from "../handler/host-contract.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import type { Logger } from "../log.ts";
import { assertTransferable } from "./frame.ts";
import { headOnlyView } from "./head-only.ts";
import { expandManifest, type PathVars, privilegeViolation } from "./policy.ts";
import { takeProcView } from "./proc-view.ts";

export interface HostEnv {
  /** Private writable directory of a host group. */
  workDirFor: (group: string) => string;
  emit: (type: string, fields?: Record<string, unknown>) => void;
  agentCall?: (method: string, args?: unknown) => Promise<unknown>;
  /** Values for `${stateDir}`/`${installDir}` in declared paths. */
  pathVars?: PathVars;
}

interface Slot {
  handler: ContentHandler<unknown>;
  state: HandlerState;
  version: number | null;
  live?: unknown;
  error?: { code: string; message: string };
  /** G1 violation: the handler never loads anything. */
  refused?: HandlerError;
}

export class InProcessHost implements HandlerHost {
  private readonly slots = new Map<string, Slot>();

  constructor(
    registry: HandlerRegistry,
    private readonly log: Logger,
    private readonly env: HostEnv,
  ) {
    for (const type of registry.types()) {
      const handler = registry.require(type);
      const refused =
        privilegeViolation(handler.manifest, registry.group(handler.manifest.group)) ?? undefined;
      this.slots.set(type, {
        handler,
        state: refused ? "failed" : "not-installed",
        version: null,
        refused,
        error: refused ? describeError(refused) : undefined,
      });
    }
  }

  private slot(type: string): Slot {
    const s = this.slots.get(type);
    if (!s) throw new HandlerError("HND_UNKNOWN_TYPE", `no handler for content type ${type}`);
    if (s.refused) throw s.refused;
    return s;
  }

  private caps(type: string): Capabilities {
    const { handler } = this.slot(type);
    const log = this.log.child({ handler: type });
    const workDir = this.env.workDirFor(handler.manifest.group);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    const manifest = this.env.pathVars
      ? expandManifest(handler.manifest, this.env.pathVars)
      : handler.manifest;
    return createCapabilities(manifest, {
      log: { info: (m, f) => log.info(m, f), warn: (m, f) => log.warn(m, f) },
      emit: this.env.emit,
      workDir,
      agentCall: this.env.agentCall,
      // No sandbox in-process: the view is read directly.
      procView: async (req) => takeProcView(req),
    });
  }

  async validate(type: string, view: ContentView): Promise<void> {
    const { handler } = this.slot(type);
    try {
      await handler.validate(headOnlyView(view, handler.manifest));
    } catch (e) {
      throw asHandlerError(e, "HND_VALIDATION_FAILED", type, view);
    }
  }

  async prepare(type: string, view: ContentView): Promise<Prepared> {
    const { handler } = this.slot(type);
    try {
      const live = await handler.load(headOnlyView(view, handler.manifest), this.caps(type));
      return { type, version: view.version, live };
    } catch (e) {
      throw asHandlerError(e, "HND_LOAD_FAILED", type, view);
    }
  }

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

  async discard(prepared: Prepared): Promise<void> {
    await this.release(this.slot(prepared.type), prepared.live);
  }

  markFailed(type: string, error: unknown): void {
    const slot = this.slots.get(type);
    if (slot && slot.state !== "loaded") {
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

  state(type: string): HandlerSlotState {
    const slot = this.slots.get(type);
    if (!slot) throw new HandlerError("HND_UNKNOWN_TYPE", `no handler for content type ${type}`);
    let status: Record<string, unknown> | undefined;
    if (slot.state === "loaded" && slot.handler.status) {
      try {
        status = slot.handler.status(slot.live);
      } catch (e) {
        status = { statusError: describeError(e).message };
      }
    }
    return {
      state: slot.state,
      version: slot.version,
      status,
      error: slot.error,
      host: {
        group: slot.handler.manifest.group,
        isolation: "in-process",
        pid: process.pid,
        hostState: "in-process",
        restarts: 0,
        lastCrash: null,
      },
    };
  }

  async call(type: string, method: string, args: unknown): Promise<unknown> {
    const slot = this.slot(type);
    if (slot.state !== "loaded") {
      throw new HandlerError("HND_NOT_LOADED", `${type} has no content loaded (${slot.state})`);
    }
    if (!slot.handler.call) throw new HandlerError("HND_NO_API", `${type} offers no API`);
    // The same rule as across a process boundary, so a handler that works here works isolated.
    assertTransferable(args);
    let result: unknown;
    try {
      result = await slot.handler.call(slot.live, method, args);
    } catch (e) {
      throw asHandlerError(e, "HND_CALL_FAILED", type);
    }
    assertTransferable(result);
    return result;
  }

  hosts(): HostStatus[] {
    const groups = new Map<string, string[]>();
    for (const [type, s] of this.slots) {
      const g = s.handler.manifest.group;
      groups.set(g, [...(groups.get(g) ?? []), type]);
    }
    return [...groups].map(([group, handlers]) => {
      const limits = handlers.reduce(
        (acc, t) => {
          const l = this.slots.get(t)!.handler.manifest.limits;
          return {
            memoryBytes: acc.memoryBytes + l.memoryMb * 1024 * 1024,
            cpuSeconds: acc.cpuSeconds + l.cpuSeconds,
          };
        },
        { memoryBytes: 0, cpuSeconds: 0 },
      );
      return {
        group,
        isolation: "in-process",
        state: "in-process",
        pid: process.pid,
        uid: process.getuid?.() ?? null,
        user: null,
        handlers,
        restarts: 0,
        crashesInWindow: 0,
        lastCrash: null,
        startedAt: null,
        layers: {
          uidDrop: false,
          capabilities: false,
          netns: false,
          landlockFs: false,
          landlockNet: false,
          landlockScope: false,
          rlimits: false,
          noNewPrivs: false,
          memory: "none",
        },
        notes: ["in-process: handlers run inside the agent; only the capability API limits them"],
        limits,
        usage: null,
      } satisfies HostStatus;
    });
  }
}

export function asHandlerError(e: unknown, code: string, type: string, view?: ContentView): HandlerError {
  if (e instanceof HandlerError) return e;
  const where = view ? `${type} v${view.version}` : type;
  const d = describeError(e);
  return new HandlerError(isOutpostError(e) ? d.code : code, `${where}: ${d.message}`, {
    file: d.file,
    cause: e,
  });
}
