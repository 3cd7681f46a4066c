/**
 * Behavior's subscription to the sensor bus (core/sensors): batches of the
 * event types its rules subscribe to go to the behavior host over IPC
 * (`feed`); the host answers with its current subscriptions, so a rules
 * update that starts or stops listening to a type changes what is sent.
 * The bus drops (and counts) when the host falls behind.
 */
import type { Agent } from "../../core/agent/runtime.ts";
import { ExcludedEventFilter } from "../../core/exclusions/event-filter.ts";
import type { SensorEvent } from "../../core/sensors/bus.ts";
import { sensorsOf } from "../../core/sensors/service.ts";
import { ticker } from "../../core/ticker.ts";

const CONSUMER = "Behavior";
/**
 * How long an event waits for others to share its IPC call to the behavior host. Most processes
 * start in bursts (a shell script, a build, a login): at 20 process starts a second in bursts of ten,
 * the host got ~17 calls a second and the supervisor spent ~0.35 ms of main-thread CPU per process
 * on them. A rule sees its event at most this much later; aggregation windows are seconds long.
 */
export const FEED_LINGER_MS = 100;

/** Types the kernel sensors deliver, so the host stops polling /proc for them. */
function provided(agent: Agent): string[] {
  const s = sensorsOf(agent);
  if (!s) return [];
  const out = ["process.start", "process.exit", "process.fork"];
  if (s.files.sensor !== "off")
    out.push("file.write", "file.create", "file.rename", "file.delete", "file.chmod");
  if (s.network.sensor !== "off") out.push("network.connect");
  return out;
}

export function behaviorFeedService(ctx: { api: Agent }) {
  let unsubscribe: (() => void) | undefined;
  let unlisten: (() => void) | undefined;
  let stopRefresh: (() => void) | undefined;
  // Events from excluded processes never reach the rules (docs/exclusions.md, scope "behavior").
  const excluded = new ExcludedEventFilter("behavior");
  const deliver = async (all: SensorEvent[]) => {
    const events = excluded.filter(all, ctx.api.exclusions.matcher);
    if (events.length === 0 && all.length > 0) return;
    const r = (await ctx.api.call("Behavior", "feed", { events, provides: provided(ctx.api) })) as {
      subscribed?: string[];
    };
    if (Array.isArray(r?.subscribed)) sensorsOf(ctx.api)?.bus.setTypes(CONSUMER, r.subscribed);
  };
  const refresh = () => void deliver([]).catch(() => {});
  return {
    name: "behavior-sensor-feed",
    start() {
      const sensors = sensorsOf(ctx.api);
      if (!sensors) return;
      unsubscribe = sensors.bus.subscribe({
        name: CONSUMER,
        types: [],
        deliver,
        maxQueue: 10_000,
        batchMax: 512,
        lingerMs: FEED_LINGER_MS,
      });
      refresh();
      // New rules or a restarted host: ask again which types the rules want.
      unlisten = ctx.api.events.subscribe((e) => {
        if (/^(content-installed|content-rolled-back|host-|handler-)/.test(e.type)) refresh();
      });
      // A safety net for changes no event announces (a host that restarted quietly); cheap when idle.
      stopRefresh = ticker.every(30_000, refresh);
    },
    stop() {
      stopRefresh?.();
      unlisten?.();
      unsubscribe?.();
    },
  };
}
