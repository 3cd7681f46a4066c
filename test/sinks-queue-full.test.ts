/**
 * A full sink queue is an alert, end to end: the results service built
 * from config the way `agent run` builds it (queryResultsService), a
 * PostgreSQL sink whose store is down (nothing listens on its port) with
 * the smallest queue cap (1 MiB), and a real agent whose alert sinks are
 * the recording one and an HttpAlertSink posting to a local receiver.
 * Rows keep coming until the cap drops the oldest: exactly one
 * `sink-dropped` alert reaches both alert sinks, naming the sink and the
 * counts, while every drop still shows as an event and in the health
 * reason and stats.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import type { Alert } from "../core/agent/alerts.ts";
import { parseConfig } from "../core/config.ts";
import { queryResultsService, settingsFromConfig } from "../handlers/ScheduledQueryPack/service.ts";
import { settingsHash } from "../handlers/ScheduledQueryPack/settings.ts";
import { HttpAlertSink } from "../plugins/sinks/http-alerts.ts";
import { freePort, waitFor } from "../plugins/sinks/testutil/servers.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "./fixtures/vendor.ts";

let vendor: Vendor;
let ta: TestAgent;
let receiver: ReturnType<typeof Bun.serve>;
const posted: Alert[] = [];

describe("a sink queue reaching its cap", () => {
  beforeAll(async () => {
    receiver = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (req) => {
        posted.push((await req.json()) as Alert);
        return new Response("ok");
      },
    });
    vendor = await makeVendor();
    ta = await startAgent(vendor, {
      alertSinks: [new HttpAlertSink(`http://127.0.0.1:${receiver.port}/alerts`)],
    });
  }, 60_000);

  afterAll(async () => {
    await ta?.stop();
    receiver?.stop(true);
    vendor?.cleanup();
  });

  test("raises one sink-dropped alert through the agent's alert sinks, with the sink and counts", async () => {
    const downPort = await freePort();
    const config = parseConfig({
      stateDir: ta.stateDir,
      query: {
        results: {
          file: { enabled: false },
          postgres: {
            url: `postgres://outpost@127.0.0.1:${downPort}/soc`,
            table: "results",
            queueMaxBytes: 1024 * 1024,
          },
        },
      },
    });
    const settings = settingsFromConfig(config.query);
    // The query host's outbox, scripted: batches of 200 rows of incompressible text (~220 KB gzip'd).
    let next = 1;
    const outbox = {
      call: async (_type: string, method: string) => {
        if (method !== "pull") return {};
        const lines = Array.from({ length: 200 }, (_, i) =>
          JSON.stringify({
            name: "pack_p_q",
            columns: { seq: String(next + i), blob: randomBytes(1000).toString("hex") },
          }),
        );
        const first = next;
        next += lines.length;
        return { settingsHash: settingsHash(settings), generation: "g", first, lines, pending: lines.length };
      },
      health: ta.agent.health,
      notify: (a: Parameters<typeof ta.agent.notify>[0]) => ta.agent.notify(a),
    };
    const service = queryResultsService({ api: outbox, config, events: ta.agent.events });
    try {
      // Until two separate writes have each dropped something: one episode, several drops.
      const drops = () => ta.agent.events.recent((e) => e.type === "sink-dropped").length;
      for (let i = 0; i < 40 && drops() < 2; i++) await service.pumpOnce({ drain: true });
      expect(drops()).toBeGreaterThanOrEqual(2);

      const [sink] = service.sinkStats() as { name: string; dropped: number; queued: number; sent: number }[];
      expect(sink).toMatchObject({ name: "postgres:results", sent: 0 });
      expect(sink!.dropped).toBeGreaterThan(200);
      const mine = (alerts: Alert[]) => alerts.filter((a) => a.kind === "sink-dropped");
      expect(mine(ta.alerts.alerts)).toHaveLength(1);
      const alert = mine(ta.alerts.alerts)[0]!;
      expect(alert).toMatchObject({ kind: "sink-dropped", code: "SINK_QUEUE_DROPPED" });
      expect(alert.reason).toMatch(
        /^postgres:results: queue cap \(1 MiB\) reached; \d+ oldest lines dropped, \d+ still queued/,
      );
      expect(alert.file).toContain("query-results/sinks/postgres");
      // The same alert, posted to the HTTP alert endpoint; and on the event stream as an `alert` event.
      await waitFor("the alert posted", () => mine(posted).length === 1, 10_000);
      expect(mine(posted)[0]).toMatchObject({ code: "SINK_QUEUE_DROPPED", reason: alert.reason });
      expect(ta.agent.events.recent((e) => e.type === "alert")).toHaveLength(1);
      // Every drop is still counted in the health reason.
      const reason = ta.agent.health.list().find((r) => r.code === "SINK_QUEUE_DROPPED");
      expect(reason?.message).toContain(`${sink!.dropped} lines dropped since`);
    } finally {
      await service.stop().catch(() => {});
    }
  }, 60_000);
});
