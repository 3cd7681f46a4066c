/**
 * Behavior's control-plane routes (a RouteExtension, mounted under /v1 by
 * `agent run` behind the token):
 *
 *   POST /v1/events/inject   {events: [...]} (or one event, or an array) → detections
 *   GET  /v1/rules/stats     per-rule telemetry of Behavior and the product library
 *
 * It also listens for the `rules-stats` events the behavior host publishes
 * and turns them into /metrics series (metrics.ts).
 */
import { Hono } from "hono";
import { ControlError } from "../../core/control/errors.ts";
import type { RouteExtension } from "../../core/control/extensions.ts";
import type { EngineStats } from "./engine.ts";
import { type RuleRow, recordRuleStats } from "./metrics.ts";

type Stats = EngineStats & { version: number; libraryVersion: number | null };

function snapshot(s: Stats) {
  return {
    version: s.version,
    rules: s.rules.map(
      (r): RuleRow => [r.name, r.calls, r.timeMs, r.maxMs, r.faults, r.disabled ? 1 : 0, r.detections],
    ),
    events: s.events,
    filtered: s.filtered,
    dropped: s.dropped,
    heapBytes: s.heapBytes,
  };
}

export function behaviorRoutes(): RouteExtension {
  return {
    name: "behavior",
    mount(v1, ctx) {
      ctx.events?.subscribe((e) => {
        if (e.type !== "rules-stats" || !Array.isArray(e.rules)) return;
        recordRuleStats({
          version: Number(e.version),
          rules: e.rules as RuleRow[],
          events: Number(e.events ?? 0),
          filtered: Number(e.filtered ?? 0),
          dropped: Number(e.dropped ?? 0),
          heapBytes: Number(e.heapBytes ?? 0),
        });
      });
      const app = new Hono();
      app.post("/events/inject", async (c) => {
        let body: unknown;
        try {
          body = await c.req.json();
        } catch (e) {
          throw new ControlError(
            "CTL_BAD_REQUEST",
            `request body is not valid JSON: ${(e as Error).message}`,
          );
        }
        const events = (body as { events?: unknown })?.events ?? body;
        return c.json(await ctx.api.call("Behavior", "inject", { events }));
      });
      app.get("/rules/stats", async (c) => {
        const behavior = (await ctx.api.call("Behavior", "stats", {})) as Stats | { waitingFor: string };
        if ("rules" in behavior) recordRuleStats(snapshot(behavior));
        let product: unknown = null;
        try {
          product = await ctx.api.call("ProductRulesFeed", "functions", {});
        } catch {
          product = null;
        }
        return c.json({ behavior, product });
      });
      v1.route("/", app);
    },
  };
}
