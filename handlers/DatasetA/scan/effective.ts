/**
 * The scanning service, following the effective configuration
 * (core/effective, docs/policy.md): Live Protection and process-tagging
 * settings may come from tenant policy, so when a key the service uses
 * changes, it is rebuilt with the new values — stop, then start — and a
 * policy that turns lookups on takes effect without restarting the agent.
 * If the new settings do not start (a bad vendor key path, say), the
 * previous ones are started again: a policy change never leaves the host
 * without scanning.
 */
import type { AgentConfig } from "../../../core/config.ts";
import { describeError } from "../../../core/errors.ts";
import { log } from "../../../core/log.ts";
import { type RuntimeContext, scanningService } from "./runtime.ts";

const logger = log.child({ component: "scanning" });

/** The keys this service reads (see createScanRuntime). */
export const SCANNING_KEYS = ["liveProtection.*", "reputation.*"];

export interface EffectiveView {
  current(): AgentConfig;
  subscribe(patterns: string[], fn: () => void): () => void;
}

export function effectiveScanningService(ctx: RuntimeContext, effective: EffectiveView) {
  let inner: ReturnType<typeof scanningService> | undefined;
  let running: AgentConfig | undefined;
  let unsubscribe: (() => void) | undefined;
  let chain: Promise<void> = Promise.resolve();

  const startWith = async (config: AgentConfig) => {
    const next = scanningService({ ...ctx, config });
    await next.start();
    inner = next;
    running = config;
  };

  const rebuild = async () => {
    const previous = running;
    await inner?.stop();
    inner = undefined;
    try {
      await startWith(effective.current());
      logger.info("scanning service restarted with the new effective configuration");
    } catch (e) {
      logger.warn("new scanning settings did not start; keeping the previous ones", describeError(e));
      if (previous) await startWith(previous);
    }
  };

  return {
    name: "scanning",
    async start() {
      await startWith(effective.current());
      unsubscribe = effective.subscribe(SCANNING_KEYS, () => {
        chain = chain.then(rebuild).catch((e) => logger.warn("scanning restart failed", describeError(e)));
      });
    },
    async stop() {
      unsubscribe?.();
      await chain;
      await inner?.stop();
      inner = undefined;
    },
    /** Resolves when every restart asked for so far has finished (tests). */
    settled: () => chain,
  };
}
