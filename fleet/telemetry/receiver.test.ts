/** The fleet telemetry receiver: refusals with codes, idempotent storage, fleet-wide rule percentiles. */
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { REPORT_SCHEMA, type TelemetryReport } from "../../core/telemetry/report-schema.ts";
import { BACKENDS, type Backend, freshDb, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import type { FleetDb } from "../db/index.ts";
import { telemetryApp, telemetryConsoleApp } from "./routes.ts";
import { percentile, TelemetryStore } from "./store.ts";

const TOKEN = "tenant-token-0123456789abcdef";
let store: TelemetryStore;
let app: ReturnType<typeof telemetryApp>;

afterAll(stopTestPostgres);

let n = 0;
function report(agentId: string, rules: [string, number, number, number][]): TelemetryReport {
  n++;
  return {
    schema: REPORT_SCHEMA,
    reportId: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    agentId,
    agentVersion: "0.1.0",
    updateGroup: "public-1",
    periodStart: "2026-12-01T00:00:00.000Z",
    periodEnd: `2026-12-01T${String(n % 24).padStart(2, "0")}:00:00.000Z`,
    health: "green",
    content: [],
    rules: rules.map(([rule, calls, timeMs, maxMs]) => ({
      rule,
      calls,
      timeMs,
      maxMs,
      faults: 0,
      limitFaults: 0,
      detections: 0,
      disabled: false,
    })),
    queries: [],
    hosts: [],
    metrics: [],
    healthHistory: [],
  };
}

function send(body: string | Uint8Array, headers: Record<string, string> = {}, method = "PUT") {
  return app.request("/telemetry/v1/agent-1", {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/json",
      "content-encoding": "gzip",
      "idempotency-key": "gen-1:1-1",
      ...headers,
    },
    body: typeof body === "string" ? gzipSync(body) : body,
  });
}

// Both engines of the fleet database (migration 006_telemetry): one schema, one query layer.
describe.each(BACKENDS)("telemetry store on %s", (backend: Backend) => {
  let dir: string;
  let db: FleetDb;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "outpost-telemetry-store-"));
    db = await freshDb(backend, dir);
    store = new TelemetryStore(db.driver);
    app = telemetryApp({
      store,
      tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)) } },
      now: () => new Date("2026-12-02T00:00:00Z"),
    });
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("refusals", () => {
    test("each bad request gets its code and stores nothing", async () => {
      const good = `${JSON.stringify(report("a1", []))}\n`;
      const cases: [Response, number, string][] = [
        [await send(good, { authorization: "Bearer wrong-token-0123456789" }), 401, "TELEM_UNAUTHORIZED"],
        [await send(good, { "idempotency-key": "" }), 400, "TELEM_NO_KEY"],
        [await send(good, { "content-type": "text/plain" }), 415, "TELEM_MEDIA_TYPE"],
        [await send(new Uint8Array(2 * 1024 * 1024)), 413, "TELEM_TOO_LARGE"],
        [await send(gzipSync(Buffer.alloc(20 * 1024 * 1024))), 400, "TELEM_INVALID"], // gzip bomb
        [await send(`${JSON.stringify({ ...report("a1", []), hostname: "box" })}\n`), 400, "TELEM_INVALID"],
        [await send(good, { "idempotency-key": "gen-1:1-2" }), 400, "TELEM_INVALID"],
      ];
      for (const [res, status, code] of cases) {
        expect(res.status).toBe(status);
        expect(((await res.json()) as { code: string }).code).toBe(code);
      }
      expect(await store.count()).toBe(0);
    });
  });

  describe("storage", () => {
    test("reports past the 30-day retention go with their rule rows when a newer one is stored", async () => {
      const day0 = new Date("2026-11-01T00:00:00Z");
      expect(await store.insert("g:1", "acme", report("a1", [["R", 1, 1, 1]]), day0)).toBe(true);
      expect(
        await store.insert(
          "g:2",
          "acme",
          report("a2", [["R", 1, 1, 1]]),
          new Date(day0.getTime() + 86400_000),
        ),
      ).toBe(true);
      expect(
        await store.insert(
          "g:3",
          "acme",
          report("a3", [["S", 2, 2, 2]]),
          new Date(day0.getTime() + 30.5 * 86400_000),
        ),
      ).toBe(true);
      expect((await store.reports()).map((r) => r.key).sort()).toEqual(["g:2", "g:3"]);
      const [rules] = await db.driver.all("SELECT COUNT(*) AS n FROM telemetry_rule_runtime WHERE key = $1", [
        "g:1",
      ]);
      expect(Number(rules?.n)).toBe(0);
      expect((await store.view()).rules.map((r) => [r.rule, r.agents])).toEqual([
        ["R", 1],
        ["S", 1],
      ]);
    });

    test("the same key stored once (PUT or POST); a body of several reports keyed per report", async () => {
      const one = `${JSON.stringify(report("a1", [["R", 1, 1, 1]]))}\n`;
      expect((await send(one)).status).toBe(201);
      expect((await send(one, {}, "POST")).status).toBe(200);
      const two = `${JSON.stringify(report("a1", []))}\n${JSON.stringify(report("a1", []))}\n`;
      expect(await (await send(two, { "idempotency-key": "gen-1:1-2" })).json()).toEqual({
        stored: 1,
        duplicates: 1,
      });
      expect(await store.count()).toBe(2);
    });

    test("percentiles over agents of mean ms per call, from each agent's latest report; slowest by p95", async () => {
      let seq = 0;
      const put = async (r: TelemetryReport) =>
        expect(
          (await send(`${JSON.stringify(r)}\n`, { "idempotency-key": `g:${++seq}-${seq}` })).status,
        ).toBe(201);
      await put(report("old", [["BEH-1", 10, 10_000, 5000]])); // superseded by the same agent's next report
      n = 0;
      for (let i = 1; i <= 20; i++)
        await put(
          report(`agent-${i}`, [
            ["BEH-1", 100, 100 * i, i * 2],
            ["BEH-2", 10, 1, 0.5],
          ]),
        );
      await put(report("old", [["BEH-1", 10, 10, 1]]));
      const view = await store.view();
      expect(view.agents).toBe(21);
      const b1 = view.rules.find((r) => r.rule === "BEH-1")!;
      expect(b1).toMatchObject({ agents: 21, calls: 2010, p50Ms: 10, p95Ms: 19, p99Ms: 20, maxMs: 40 });
      expect(view.slowest.map((r) => r.rule)).toEqual(["BEH-1", "BEH-2"]);
      const html = await (await telemetryConsoleApp(store).request("/console/telemetry")).text();
      // The upload app serves no view (the release server mounts the views behind the operator login).
      expect((await app.request("/console/telemetry.json")).status).toBe(404);
      expect(html).toContain("<td>BEH-1</td>");
      expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    });
  });
});
