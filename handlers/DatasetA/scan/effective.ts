/**
 * The scanning service, following the effective configuration
 * (core/effective/follow.ts, docs/policy.md): Live Protection and
 * process-tagging settings may come from tenant policy, so when a key the
 * service uses changes, it is rebuilt with the new values — stop, then
 * start — and a policy that turns lookups on takes effect without
 * restarting the agent. If the new settings do not start (a bad vendor key
 * path, say), the follower starts the previous ones again: a policy change
 * never leaves the host without scanning.
 *
 * ML scoring follows `ml.*` on its own, without a rebuild: the scan
 * requester reads the mode in force at every object (MLModel/scan-hook.ts),
 * so a policy or `mlLive` flag change applies to the next scan.
 */
import type { AgentConfig } from "../../../core/config.ts";
import {
  type EffectiveSource,
  type FollowReporter,
  followEffective,
} from "../../../core/effective/follow.ts";
import type { MlConfig } from "../../../core/ml-config.ts";
import { type RuntimeContext, scanningService } from "./runtime.ts";

/** The keys the scanning service reads (see createScanRuntime). */
export const SCANNING_KEYS = ["liveProtection.*", "reputation.*"];
export const ML_KEYS = ["ml.*"];

type ScanSettings = Pick<AgentConfig, "liveProtection" | "reputation">;

export function effectiveScanningService(
  ctx: RuntimeContext & { api: RuntimeContext["api"] & FollowReporter },
  effective: EffectiveSource,
) {
  let inner: ReturnType<typeof scanningService> | undefined;
  let ml: MlConfig = effective.current().ml;
  const reporter: FollowReporter = {
    ...(ctx.api.health ? { health: ctx.api.health } : {}),
    emit: (type, fields) => ctx.events?.emit(type, fields),
  };
  const scanning = followEffective<ScanSettings>(effective, {
    name: "scanning",
    keys: SCANNING_KEYS,
    select: (c) => ({ liveProtection: c.liveProtection, reputation: c.reputation }),
    async apply(next) {
      await inner?.stop();
      inner = undefined;
      const s = scanningService({
        ...ctx,
        config: { ...effective.current(), ...next },
        mlMode: () => ml.mode,
      });
      await s.start();
      inner = s;
    },
    ...reporter,
  });
  const mlFollower = followEffective<MlConfig>(effective, {
    name: "ml",
    keys: ML_KEYS,
    select: (c) => c.ml,
    apply(next) {
      ml = next;
    },
    ...reporter,
  });

  return {
    name: "scanning",
    async start() {
      await mlFollower.start();
      await scanning.start();
    },
    async stop() {
      await scanning.stop();
      await mlFollower.stop();
      await inner?.stop();
      inner = undefined;
    },
    /** Resolves when every change asked for so far has been applied or refused (tests). */
    settled: () => Promise.all([scanning.settled(), mlFollower.settled()]).then(() => {}),
    /** The ML mode the scan requester uses now. */
    mlMode: () => ml.mode,
  };
}
