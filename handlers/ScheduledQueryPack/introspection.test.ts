/** osquery_schedule answers from the scheduler's statistics, through the real worker, as osquery-monitoring's query uses it. */
import { afterEach, expect, test } from "bun:test";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { createScheduledQueryPackHandler, type Loaded } from "./index.ts";
import { capsFor, pack, viewOf } from "./testutil.ts";

const handler = createScheduledQueryPackHandler({ runner: { checkMs: 50 } }) as ContentHandler<Loaded>;
const loaded: Loaded[] = [];
afterEach(async () => {
  for (const l of loaded.splice(0)) await handler.unload!(l);
});

test(
  "a scheduled query on osquery_schedule sees every query's executions and wall time",
  async () => {
    const view = viewOf({
      "packs/p.conf": pack({
        work: { query: "select 1 as x" },
        schedule: {
          query:
            "select name, interval, executions, wall_time_ms, denylisted, (user_time/executions) as avg_user_time from osquery_schedule",
          snapshot: true,
        },
      }),
    });
    await handler.validate(view);
    const l = await handler.load(view, capsFor(handler as ContentHandler<unknown>).caps);
    loaded.push(l);
    const call = (method: string, args: unknown) =>
      handler.call!(l, method, args) as Promise<Record<string, unknown>>;
    expect(await call("run", { name: "pack_p_work" })).toMatchObject({ status: "ok" });
    expect(await call("run", { name: "pack_p_work" })).toMatchObject({ status: "ok" });
    expect(await call("run", { name: "pack_p_schedule" })).toMatchObject({ status: "ok" });
    const lines = ((await call("pull", { max: 100 })).lines as string[]).map((x) => JSON.parse(x));
    const snapshot = lines.find((x) => x.name === "pack_p_schedule")?.snapshot as Record<string, string>[];
    const work = snapshot.find((r) => r.name === "pack_p_work");
    expect(work).toMatchObject({ executions: "2", denylisted: "0" });
    expect(Number(work!.interval)).toBeGreaterThan(0);
    expect(Number(work!.wall_time_ms)).toBeGreaterThanOrEqual(0);
  },
  { timeout: 30_000 },
);
