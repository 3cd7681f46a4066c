/**
 * Query watchdog limits from tenant policy (`query.watchdog.*`) reach the
 * query host while it runs and apply to the next query: a runaway query in
 * a real worker process is killed at the policy's wall limit, not the
 * default minute. A change the host refuses leaves the previous limits in
 * force, reported on the health board and the event stream.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentConfig, parseConfig } from "../../core/config.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { HealthBoard } from "../../core/health/reasons.ts";
import { createScheduledQueryPackHandler, type Loaded } from "./index.ts";
import { resultsAgentService, resultsServiceOf } from "./service.ts";
import { capsFor, pack, viewOf } from "./testutil.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-query-policy-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/** A deadline, not a delay. */
async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(10);
  return cond();
}

test("a policy wall limit applies to the next query; a change the host refuses keeps the previous limits", async () => {
  const handler = createScheduledQueryPackHandler({
    timers: { setTimeout: () => 0, clearTimeout: () => {} },
  }) as ContentHandler<Loaded>;
  const { caps } = capsFor(handler as ContentHandler<unknown>, join(root, "work"));
  const l = await handler.load(
    viewOf({ "packs/p.conf": pack({ spin: { query: SPIN, interval: 3600 } }) }),
    caps,
  );

  const config = (watchdog: Record<string, number>): AgentConfig =>
    parseConfig({ stateDir: join(root, "state"), query: { watchdog, results: { flushSeconds: 0.05 } } });
  let current = config({});
  const subs = new Set<() => void>();
  const effective = {
    current: () => current,
    subscribe: (_p: string[], fn: () => void) => {
      subs.add(fn);
      return () => subs.delete(fn);
    },
  };
  let refuseConfigure = false;
  const health = new HealthBoard();
  const events: { type: string; fields?: Record<string, unknown> }[] = [];
  const api = {
    call: async (_type: string, method: string, args: unknown) => {
      if (method === "configure" && refuseConfigure) throw new Error("query host restarting");
      return handler.call!(l, method, args);
    },
    health,
    effective,
  };
  const svc = resultsAgentService({
    api,
    config: current,
    events: { emit: (type, fields) => events.push({ type, fields }) },
  });
  await svc.start();
  try {
    // The service configures the host on its first pull: the default minute.
    expect(await until(() => l.host.configured)).toBe(true);
    expect(l.host.settings.watchdog.wallSeconds).toBe(60);

    // Tenant policy: 0.5 s of wall time (CPU and latency limits out of the way).
    current = config({ wallSeconds: 0.5, cpuPercent: 100, latencySeconds: 3600 });
    for (const fn of subs) fn();
    await svc.settled();
    expect(l.host.settings.watchdog.wallSeconds).toBe(0.5);
    const report = await l.scheduler.runNow("pack_p_spin", { force: true })!;
    expect(report).toMatchObject({ status: "killed" });
    expect(report.wallMs).toBeGreaterThanOrEqual(500);
    expect(report.wallMs).toBeLessThan(30_000);
    expect(events.find((e) => e.type === "config-applied")?.fields).toMatchObject({
      service: "query",
      keys: ["watchdog.cpuPercent", "watchdog.latencySeconds", "watchdog.wallSeconds"],
    });

    // The host cannot take the next change: the previous limits stay, on both sides.
    refuseConfigure = true;
    current = config({ wallSeconds: 5, cpuPercent: 100, latencySeconds: 3600 });
    for (const fn of subs) fn();
    await svc.settled();
    expect(l.host.settings.watchdog.wallSeconds).toBe(0.5);
    expect(resultsServiceOf(api)?.settings.watchdog.wallSeconds).toBe(0.5);
    expect(health.get("config:query", "POL_NOT_APPLIED")?.message).toContain("query host restarting");
    expect(events.at(-1)).toMatchObject({
      type: "config-apply-failed",
      fields: { service: "query", restored: true },
    });
  } finally {
    await svc.stop();
    await handler.unload!(l);
  }
});
