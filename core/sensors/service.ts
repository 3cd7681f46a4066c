/**
 * The kernel sensors as one supervisor service (`agent run` starts it
 * first): the sensor bus, the process sensor and the file sensor. Consumers
 * — Behavior's feed, the process tagger, on-access scanning — are wired by
 * the entry point and find the bus through `sensorsOf(agent)` (attached to
 * the agent they serve, core/agent/attachments.ts). A sensor
 * that cannot start leaves the agent running: the reason goes on the
 * health board (amber) and in `agent status` under `sensors`.
 */
import type { Agent } from "../agent/runtime.ts";
import type { AgentConfig } from "../config.ts";
import { IdleGc } from "../host/idle-gc.ts";
import { log } from "../log.ts";
import { metrics } from "../metrics.ts";
import { SensorBus } from "./bus.ts";
import { FileSensor } from "./files.ts";
import { NetworkSensor } from "./network.ts";
import { ProcessSensor } from "./process.ts";

const logger = log.child({ component: "sensors" });

const sensorInfo = metrics.gauge(
  "outpost_sensor_source",
  "The source each kernel sensor uses (1 = in use), by sensor and source (netlink, fanotify, inotify, poll, off)",
);

export interface Sensors {
  bus: SensorBus;
  process: ProcessSensor;
  files: FileSensor;
  network: NetworkSensor;
  /** Extra status sections contributed by consumers (e.g. onAccess). */
  sections: Map<string, () => unknown>;
}

// Attached to the agent they serve, like core/agent/attachments.ts does (a WeakMap here: core/sensors
// must not import core/agent at run time, which would knot the folders into a load-order cycle).
const byAgent = new WeakMap<object, Sensors>();
const sensorsByAgent = {
  get: (agent: object) => byAgent.get(agent),
  set: (agent: object, s: Sensors) => void byAgent.set(agent, s),
  delete: (agent: object, s: Sensors) => {
    if (byAgent.get(agent) === s) byAgent.delete(agent);
  },
};

/** The sensors running beside `agent` (undefined before `agent run` started them, or in `agent scan`). */
export function sensorsOf(agent: object): Sensors | undefined {
  return sensorsByAgent.get(agent);
}

export const HEALTH_SOURCE = "sensors";

export function sensorsService(ctx: { config: AgentConfig; api: Agent }) {
  let sensors: Sensors | undefined;
  return {
    name: "sensors",
    async start() {
      const bus = new SensorBus();
      const cfg = ctx.config.sensors;
      // Under BUN_GC_TIMER_DISABLE (the systemd unit) nothing else collects while idle: one GC after each burst.
      const gc = new IdleGc();
      const publish = (events: Parameters<SensorBus["publish"]>[0]) => {
        bus.publish(events);
        gc.touch();
      };
      const process = new ProcessSensor({ mode: cfg.process, publish, pollIntervalMs: cfg.pollIntervalMs });
      const files = new FileSensor({ paths: cfg.files.paths, publish, exeOf: (pid) => process.exeOf(pid) });
      const network = new NetworkSensor({ mode: cfg.network, group: cfg.nflogGroup, publish });
      sensors = { bus, process, files, network, sections: new Map() };
      sensorsByAgent.set(ctx.api, sensors);
      process.start();
      files.start();
      network.start();
      sensorInfo.set({ sensor: "network", source: network.sensor }, 1);
      sensorInfo.set({ sensor: "process", source: process.sensor }, 1);
      sensorInfo.set({ sensor: "files", source: files.sensor }, 1);
      const health = ctx.api.health;
      if (process.reason) health.raise(HEALTH_SOURCE, "amber", "SENSOR_PROCESS_DEGRADED", process.reason);
      if (files.reason) health.raise(HEALTH_SOURCE, "amber", "SENSOR_FILES_DEGRADED", files.reason);
      // Off by configuration is not degraded; unavailable is (Behavior falls back to polling).
      if (network.sensor === "off" && cfg.network !== "off" && network.reason)
        health.raise(HEALTH_SOURCE, "amber", "SENSOR_NETWORK_DEGRADED", network.reason);
      const s = sensors;
      ctx.api.statusSections.set("sensors", () => sensorsStatus(s));
      logger.info("sensors started", {
        process: process.sensor,
        files: files.sensor,
        network: network.sensor,
      });
    },
    async stop() {
      ctx.api.statusSections.delete("sensors");
      if (sensors) sensorsByAgent.delete(ctx.api, sensors);
      await sensors?.process.stop();
      await sensors?.files.stop();
      await sensors?.network.stop();
    },
  };
}

export function sensorsStatus(s: Sensors): Record<string, unknown> {
  const bus = s.bus.stats();
  return {
    process: s.process.status(),
    files: s.files.status(),
    network: s.network.status(),
    eventsPerSecond: bus.eventsPerSecond,
    published: bus.published,
    consumers: bus.consumers,
    ...Object.fromEntries([...s.sections].map(([k, f]) => [k, f()])),
  };
}
