/**
 * Starts on-access scanning when `onAccess.enabled`: the access sensor
 * (core/sensors/access.ts, fanotify in the supervisor) feeding the
 * OnAccessScanner, which scans through the scanning service `agent run`
 * already started (handlers/DatasetA/scan/runtime.ts). Failing to start leaves the
 * agent running, with the reason on the health board and in status.
 *
 * It follows the effective configuration (core/effective/follow.ts): a
 * policy or flag change to `onAccess.*` — enable/disable, detect/block
 * (block needs the `onAccessBlock` flag once flags are in force), paths,
 * exclusions, limits — rebuilds the sensor and scanner with the new
 * settings, so fanotify is re-marked without restarting the agent. New
 * settings that do not start cleanly (a path that cannot be marked) are
 * refused and the previous ones started again.
 */
import type { Agent } from "../../core/agent/runtime.ts";
import type { AgentConfig } from "../../core/config.ts";
import { followEffective } from "../../core/effective/follow.ts";
import { OutpostError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { AccessSensor, type AccessSensorOptions } from "../../core/sensors/access.ts";
import { HEALTH_SOURCE, sensorsOf } from "../../core/sensors/service.ts";
import type { OnAccessConfig } from "../../core/sensors-config.ts";
import { type OnAccessOptions, OnAccessScanner } from "./on-access.ts";
import { scanRuntimeOf } from "./scan/runtime.ts";

const logger = log.child({ component: "on-access" });
/** Content whose change can turn a clean verdict into a detection. */
const VERDICT_CONTENT = new Set(["DatasetA", "MLModel"]);

export const ON_ACCESS_KEYS = ["onAccess.*"];

export function onAccessService(ctx: { config: AgentConfig; api: Agent }) {
  let sensor: AccessSensor | undefined;
  let scanner: OnAccessScanner | undefined;
  let problem: string | undefined;
  let cfg: OnAccessConfig = ctx.config.onAccess;
  const gate = () => ctx.api.effective.gates().find((g) => g.key === "onAccess.mode");
  let unsubscribe: (() => void) | undefined;
  const status = () => {
    const g = gate();
    const kernel = sensor?.stats();
    return {
      enabled: cfg.enabled,
      sensor: sensor ? "fanotify" : "off",
      mode: cfg.mode,
      ...(g?.withheld ? { modeWithheld: { wanted: g.wanted, flag: g.flag } } : {}),
      paths: cfg.paths,
      ...(problem ? { reason: problem } : {}),
      ...(scanner?.stats((kernel?.cacheAllowed as number) ?? 0) ?? {}),
      ...(kernel ? { kernel, failOpen: (kernel.failOpen as number) ?? 0 } : {}),
      ...(sensor?.marking() ? { marks: sensor.marking() } : {}),
    };
  };

  const stopParts = async () => {
    unsubscribe?.();
    unsubscribe = undefined;
    sensorsOf(ctx.api)?.sections.delete("onAccess");
    await sensor?.stop();
    scanner?.stop();
    sensor = undefined;
    scanner = undefined;
    problem = undefined;
    ctx.api.health.clear(HEALTH_SOURCE, "SENSOR_ONACCESS_DEGRADED");
  };

  /** Starts sensor and scanner for `next`; returns why it is degraded, if it is. */
  const startParts = (next: OnAccessConfig): string | undefined => {
    cfg = next;
    if (!cfg.enabled) return undefined;
    sensorsOf(ctx.api)?.sections.set("onAccess", status);
    const runtime = scanRuntimeOf(ctx.api);
    if (!runtime) return "the scanning service is not running";
    const started = startOnAccess({
      config: cfg,
      stateDir: ctx.config.stateDir,
      // Looked up per decision: a Live Protection policy change rebuilds the scanning service under us.
      service: () => scanRuntimeOf(ctx.api)?.service,
      call: (type, method, args) => ctx.api.call(type, method, args),
      sxl: () => scanRuntimeOf(ctx.api)?.sxl,
      emit: (type, fields) => ctx.api.events.emit(type, fields),
      exclusions: () => ctx.api.exclusions.matcher,
    });
    scanner = started.scanner;
    sensor = started.sensor;
    // Verdicts hold for the content that gave them: new signatures or models rescan every file.
    unsubscribe = ctx.api.events.subscribe((e) => {
      if (
        (e.type === "content-installed" || e.type === "content-rolled-back") &&
        VERDICT_CONTENT.has(String(e.contentType))
      )
        started.scanner.forgetVerdicts();
    });
    const why = started.problem;
    if (why && sensor.stats().marks === 0) sensor = undefined;
    return why;
  };

  const follower = followEffective<OnAccessConfig>(ctx.api.effective, {
    name: "on-access",
    keys: ON_ACCESS_KEYS,
    select: (c) => c.onAccess,
    async apply(next, previous) {
      await stopParts();
      problem = startParts(next);
      if (!problem) {
        if (cfg.enabled) logger.info("on-access scanning started", { mode: cfg.mode, paths: cfg.paths });
        else if (previous?.enabled) logger.info("on-access scanning stopped (disabled by configuration)");
        return;
      }
      // At start a degraded sensor is still better than none: report it and keep going.
      if (previous === undefined) {
        ctx.api.health.raise(
          HEALTH_SOURCE,
          "amber",
          "SENSOR_ONACCESS_DEGRADED",
          `on-access scanning: ${problem}`,
        );
        logger.warn("on-access scanning degraded", { reason: problem });
        return;
      }
      // A change that does not start cleanly is refused; the follower starts `previous` again.
      const why = problem;
      await stopParts();
      throw new OutpostError("POL_SETTINGS_NOT_STARTED", `on-access settings did not start: ${why}`);
    },
    health: ctx.api.health,
    emit: (type, fields) => ctx.api.events.emit(type, fields),
  });

  return {
    name: "on-access",
    start: () => follower.start(),
    async stop() {
      await follower.stop();
      await stopParts();
    },
    /** Resolves when every change heard so far has been applied or refused (tests). */
    settled: () => follower.settled(),
  };
}

/**
 * The on-access pair as the agent runs it: the scanner (verdicts, cache, exclusions) and the access
 * sensor (fanotify) deciding through it. Shared by the service and bench/onaccess.ts, so the bench
 * measures the wiring the agent ships.
 */
export function startOnAccess(
  o: OnAccessOptions,
  sensorOptions: Pick<AccessSensorOptions, "maxIgnoreMarks"> = {},
): {
  scanner: OnAccessScanner;
  sensor: AccessSensor;
  problem: string | undefined;
} {
  let sensor: AccessSensor | undefined;
  const scanner = new OnAccessScanner({
    ...o,
    onClean: (f, fd) => sensor?.allowFile(f, fd),
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
    onWritten: (f) => scanner.forgetFile(f),
    ...sensorOptions,
  });
  return { scanner, sensor, problem: sensor.start() };
}
