/**
 * For the on-access kernel tests: a detect-mode access sensor on `dir`,
 * deciding through a running agent's scanning runtime — the wiring
 * on-access-service.ts does, without the agent's config.
 */
import type { Agent } from "../../core/agent/runtime.ts";
import { AccessSensor } from "../../core/sensors/access.ts";
import { OnAccessSchema } from "../../core/sensors-config.ts";
import { OnAccessScanner } from "./on-access.ts";
import { scanRuntimeOf } from "./scan/runtime.ts";

export function detectModeSensor(
  agent: Agent,
  stateDir: string,
  dir: string,
): { scanner: OnAccessScanner; sensor: AccessSensor } {
  const runtime = scanRuntimeOf(agent);
  if (!runtime) throw new Error("the agent has no scanning runtime (DatasetA not installed?)");
  const config = OnAccessSchema.parse({ enabled: true, mode: "detect", paths: [dir] });
  const scanner = new OnAccessScanner({
    config,
    stateDir,
    service: runtime.service,
    call: (t, m, a) => agent.call(t, m, a),
    emit: (type, f) => agent.events.emit(type, f),
  });
  const sensor = new AccessSensor({
    mode: "detect",
    paths: [dir],
    timeoutMs: 1000,
    decide: (ev) => scanner.decide(ev),
  });
  return { scanner, sensor };
}
