/**
 * The agent actions a repair may need (update now, roll back a type), bound
 * to whatever can perform them: the Agent object in the supervisor, the
 * control plane of a running agent, or an agent started in-process after
 * an offline repair.
 */
import type { AgentApi, AgentStatus, ContentInfo, UpdateCycleReport } from "../../core/agent/api.ts";
import type { AgentActions } from "./facts.ts";

export function describeCycle(r: UpdateCycleReport): string {
  const parts = [`index ${r.index}`];
  if (r.installed.length)
    parts.push(`installed ${r.installed.map((i) => `${i.type} v${i.version}`).join(", ")}`);
  if (r.rejected.length) {
    parts.push(
      `rejected ${r.rejected.map((x) => `${x.type ?? x.file}: ${x.code} (${x.reason.slice(0, 200)})`).join(", ")}`,
    );
  }
  return parts.join("; ");
}

/** Anything with the AgentApi's update/rollback/status (an Agent, a ControlClient). */
export function actionsFor(
  api: Pick<AgentApi, "update" | "rollback"> & {
    status(): AgentStatus | Promise<AgentStatus>;
  },
): AgentActions {
  return {
    status: async () => await api.status(),
    update: async () => {
      const r = await api.update();
      return { ok: r.ok, detail: describeCycle(r) };
    },
    rollback: async (type) => {
      const info: ContentInfo = await api.rollback(type);
      return { ok: true, detail: `${type} now at v${info.version}` };
    },
  };
}

/** Through a handler's `caps.agent` (privileges.agent). */
export function actionsFromCaps(agent: {
  call(method: string, args?: unknown): Promise<unknown>;
}): AgentActions {
  return {
    status: async () => (await agent.call("status")) as AgentStatus,
    update: async () => {
      const r = (await agent.call("update")) as UpdateCycleReport;
      return { ok: r.ok, detail: describeCycle(r) };
    },
    rollback: async (type) => {
      const info = (await agent.call("rollback", { type })) as ContentInfo;
      return { ok: true, detail: `${type} now at v${info.version}` };
    },
  };
}
