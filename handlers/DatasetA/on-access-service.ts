/**
 * Starts on-access scanning when `onAccess.enabled`: the access sensor
 * (core/sensors/access.ts, fanotify in the supervisor) feeding the
 * OnAccessScanner, which scans through the scanning service `agent run`
 * already started (handlers/DatasetA/scan/runtime.ts). Failing to start leaves the
 * agent running, with the reason on the health board and in status.
 */
import type { Agent } from "../../core/agent/runtime.ts";
import type { AgentConfig } from "../../core/config.ts";
import { log } from "../../core/log.ts";
import { AccessSensor } from "../../core/sensors/access.ts";
import { HEALTH_SOURCE, sensorsOf } from "../../core/sensors/service.ts";
import { type OnAccessOptions, OnAccessScanner } from "./on-access.ts";
import { scanRuntimeOf } from "./scan/runtime.ts";

const logger = log.child({ component: "on-access" });
/** Content whose change can turn a clean verdict into a detection. */
const VERDICT_CONTENT = new Set(["DatasetA", "MLModel"]);

export function onAccessService(ctx: { config: AgentConfig; api: Agent }) {
  let sensor: AccessSensor | undefined;
  let scanner: OnAccessScanner | undefined;
  let problem: string | undefined;
  let unsubscribe: (() => void) | undefined;
  const cfg = ctx.config.onAccess;
  const status = () => {
    const kernel = sensor?.stats();
    return {
      enabled: cfg.enabled,
      sensor: sensor ? "fanotify" : "off",
      mode: cfg.mode,
      paths: cfg.paths,
      ...(problem ? { reason: problem } : {}),
      ...(scanner?.stats((kernel?.cacheAllowed as number) ?? 0) ?? {}),
      ...(kernel ? { kernel, failOpen: (kernel.failOpen as number) ?? 0 } : {}),
    };
  };
  return {
    name: "on-access",
    start() {
      if (!cfg.enabled) return;
      sensorsOf(ctx.api)?.sections.set("onAccess", status);
      const runtime = scanRuntimeOf(ctx.api);
      if (!runtime) {
        problem = "the scanning service is not running";
      } else {
        const started = startOnAccess({
          config: cfg,
          stateDir: ctx.config.stateDir,
          service: runtime.service,
          call: (type, method, args) => ctx.api.call(type, method, args),
          ...(runtime.sxl ? { sxl: runtime.sxl } : {}),
          emit: (type, fields) => ctx.api.events.emit(type, fields),
          exclusions: () => ctx.api.exclusions.matcher,
        });
        ({ scanner, sensor, problem } = started);
        if (problem && sensor.stats().marks === 0) sensor = undefined;
        // Verdicts hold for the content that gave them: new signatures or models rescan every file.
        const s = started.scanner;
        unsubscribe = ctx.api.events.subscribe((e) => {
          if (
            (e.type === "content-installed" || e.type === "content-rolled-back") &&
            VERDICT_CONTENT.has(String(e.contentType))
          )
            s.forgetVerdicts();
        });
      }
      if (problem) {
        ctx.api.health.raise(
          HEALTH_SOURCE,
          "amber",
          "SENSOR_ONACCESS_DEGRADED",
          `on-access scanning: ${problem}`,
        );
        logger.warn("on-access scanning degraded", { reason: problem });
      } else logger.info("on-access scanning started", { mode: cfg.mode, paths: cfg.paths });
    },
    async stop() {
      unsubscribe?.();
      sensorsOf(ctx.api)?.sections.delete("onAccess");
      await sensor?.stop();
      scanner?.stop();
    },
  };
}

/**
 * The on-access pair as the agent runs it: the scanner (verdicts, cache, exclusions) and the access
 * sensor (fanotify) deciding through it. Shared by the service and bench/onaccess.ts, so the bench
 * measures the wiring the agent ships.
 */
export function startOnAccess(o: OnAccessOptions): {
  scanner: OnAccessScanner;
  sensor: AccessSensor;
  problem: string | undefined;
} {
  let sensor: AccessSensor | undefined;
  const scanner = new OnAccessScanner({
    ...o,
    onClean: (f) => sensor?.allowFile(f),
    onForget: () => sensor?.forgetAllowed(),
  });
  sensor = new AccessSensor({
    mode: o.config.mode,
    paths: o.config.paths,
    timeoutMs: o.config.timeoutMs,
    // Enough decisions at once for a burst (cp, tar) to fill scan batches; memory stays bounded
    // because the scanner holds at most one file over the batch size in memory (on-access.ts).
    concurrency: 16,
    decide: (ev) => scanner.decide(ev),
  });
  return { scanner, sensor, problem: sensor.start() };
}
