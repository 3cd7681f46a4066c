/**
 * The IPS as a service of `agent run` (bin/agent-main.ts): started after
 * the agent, stopped before it, and following the effective configuration
 * (core/effective/follow.ts, docs/policy.md). A tenant policy that sets
 * `ips.enabled`, `ips.mode` or `ips.ports.*`, or a change of the `ips`
 * flag, reaches the running service without a restart: enabling installs
 * the queue rules, disabling removes them, a mode or port change
 * re-installs them. Settings that do not start are refused (status and a
 * `config-apply-failed` event) and the previous ones are put back.
 */
import type { AgentConfig } from "../../core/config.ts";
import { type EffectiveSource, followEffective } from "../../core/effective/follow.ts";
import type { GateRow } from "../../core/effective/gates.ts";
import type { IpsConfig } from "../../core/ips-config.ts";
import type { QueueOptions } from "../../core/sensors/nfqueue/nfq.ts";
import type { QueueRules } from "../../core/sensors/nfqueue/rules.ts";
import { type IpsAgent, type IpsGate, IpsService, type QueueLike } from "./service.ts";

export const IPS_KEYS = ["ips.*", "flags.ips"];

/** What the IPS needs from the effective-config service (core/effective/service.ts). */
export interface IpsEffective extends EffectiveSource {
  allows(flag: string): boolean;
  gates(): GateRow[];
}

export function ipsGateOf(effective: IpsEffective): IpsGate {
  return {
    allowed: effective.allows("ips"),
    withheld: effective.gates().find((g) => g.flag === "ips")?.withheld ?? false,
  };
}

let current: IpsService | undefined;

/** The service `agent run` started (what the control-plane routes use), if any. */
export function currentIpsService(): IpsService | undefined {
  return current;
}

/** The long-running service `agent run` starts after the agent and stops before it. */
export function ipsService(
  ctx: { config: AgentConfig; api: IpsAgent & { effective?: IpsEffective } },
  /** The packet filter and queue (tests pass fakes). */
  kernel: { rules?: QueueRules; openQueue?: (o: QueueOptions) => QueueLike } = {},
): {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  settled(): Promise<void>;
  service: IpsService;
} {
  const effective = ctx.api.effective;
  if (!effective) {
    // Embedders without an effective-config service: agent.json only, as before.
    const service = new IpsService(ctx.api, ctx.config, kernel);
    return {
      name: "ips",
      service,
      async start() {
        current = service;
        await service.start();
      },
      async stop() {
        await service.stop();
        if (current === service) current = undefined;
      },
      settled: async () => {},
    };
  }
  const service = new IpsService(
    ctx.api,
    { ...ctx.config, ips: effective.current().ips },
    { ...kernel, gate: () => ipsGateOf(effective) },
  );
  const follower = followEffective<{ ips: IpsConfig; gate: IpsGate }>(effective, {
    name: "ips",
    keys: IPS_KEYS,
    select: (c) => ({ ips: c.ips, gate: ipsGateOf(effective) }),
    async apply(next, previous) {
      if (previous === undefined) {
        current = service;
        await service.start();
        return;
      }
      const why =
        JSON.stringify(next.gate) !== JSON.stringify(previous.gate) ? "ips flag changed" : "policy changed";
      await service.applyConfig(next.ips, why);
    },
    health: ctx.api.health,
    emit: (type, fields) => ctx.api.events.emit(type, fields),
  });
  return {
    name: "ips",
    service,
    start: () => follower.start(),
    async stop() {
      await follower.stop();
      await service.stop();
      if (current === service) current = undefined;
    },
    settled: () => follower.settled(),
  };
}
