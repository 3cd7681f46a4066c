/**
 * Messages from host processes to the supervisor: logs and events
 * (rate-limited; a host can neither forge the supervisor's own event types
 * nor speak for another group's handlers), handler status carried by
 * heartbeats, requests for agent actions (only for handlers that declared
 * them, in a group that allows them), and protocol errors.
 */
import { HandlerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Notification, ProtocolProblem } from "./channel.ts";
import { eventsDropped, ipcProtocolErrors } from "./host-metrics.ts";
import { type ProcView, takeProcView } from "./proc-view.ts";
import { AgentCallArgs, HostViewArgs, parseWire, StatusResult } from "./protocol.ts";
import type { GroupRec, ManagerContext } from "./records.ts";

/** Event types only the supervisor emits; a host (which runs content) may not forge them. */
const RESERVED_EVENTS =
  /^(agent-|update-|content-|host-|crash-loop$|alert$|handler-failed$|detection-suppressed$)/;

export class HostRouter {
  constructor(private readonly ctx: ManagerContext) {}

  applyStatus(raw: unknown): void {
    const r = StatusResult.safeParse(raw);
    if (!r.success) return;
    for (const h of r.data.handlers) {
      const slot = this.ctx.slots.get(h.type);
      if (slot && h.state === "loaded" && h.version === slot.version) slot.status = h.status;
    }
  }

  notification(g: GroupRec, n: Notification, log: Logger): void {
    if (n.t === "log") {
      log.log(n.level, n.msg, { ...n.f, pid: g.proc?.pid });
      return;
    }
    if (RESERVED_EVENTS.test(n.type)) {
      eventsDropped.inc({ group: g.name });
      this.protocolError(
        g,
        { kind: "reserved-event", message: `event type ${n.type} is reserved`, fatal: false },
        log,
      );
      return;
    }
    const now = this.ctx.now();
    const rate = this.ctx.opts.config.eventsPerSecond;
    g.tokens = Math.min(rate, g.tokens + ((now - g.tokensAt) / 1000) * rate);
    g.tokensAt = now;
    if (g.tokens < 1) {
      eventsDropped.inc({ group: g.name });
      return;
    }
    g.tokens -= 1;
    const fields = { ...n.f };
    // A host can only speak for its own handlers.
    if (typeof fields.handler !== "string" || !g.types.includes(fields.handler)) delete fields.handler;
    this.ctx.opts.emit(n.type, { ...fields, group: g.name });
  }

  async hostRequest(g: GroupRec, method: string, raw: unknown): Promise<unknown> {
    if (method === "hostView") return this.hostView(g, raw);
    if (method !== "agent") throw new HandlerError("HND_NO_METHOD", `supervisor: unknown request ${method}`);
    const a = parseWire(AgentCallArgs, raw, "agent");
    const slot = this.ctx.slots.get(a.handler);
    // The host asks on behalf of a handler: it must be one of its own, and one that declared agent access.
    if (!slot || slot.host !== g.name || !slot.manifest.privileges.agent || !g.policy?.agent) {
      throw new HandlerError(
        "HND_AGENT_DENIED",
        `${a.handler} (host ${g.name}) may not ask for agent actions`,
      );
    }
    if (!this.ctx.opts.agentCall) throw new HandlerError("HND_AGENT_DENIED", "no agent actions available");
    return this.ctx.opts.agentCall(a.method, a.args);
  }

  /** The process view for a host whose group and handler both declared hostView (proc-view.ts says why). */
  private hostView(g: GroupRec, raw: unknown): ProcView {
    const a = parseWire(HostViewArgs, raw, "hostView");
    const slot = this.ctx.slots.get(a.handler);
    if (!slot || slot.host !== g.name || !slot.manifest.privileges.hostView || !g.policy?.hostView) {
      throw new HandlerError(
        "HND_AGENT_DENIED",
        `${a.handler} (host ${g.name}) may not ask for the process view`,
      );
    }
    return takeProcView(a.req);
  }

  protocolError(g: GroupRec, p: ProtocolProblem, log: Logger): void {
    ipcProtocolErrors.inc({ group: g.name, kind: p.kind });
    log.warn("rejected a message from the host", {
      pid: g.proc?.pid,
      kind: p.kind,
      problem: p.message,
      fatal: p.fatal,
    });
  }
}
