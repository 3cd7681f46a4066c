import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Alert } from "../../core/agent/alerts.ts";
import {
  disposeAgent,
  liveText,
  makeVendor,
  startAgent,
  type TestAgent,
  type Vendor,
} from "../../test/fixtures/vendor.ts";
import { alertSinksFromUrls, HttpAlertSink } from "./http-alerts.ts";

type Received = { path: string; alert: Alert };
let received: Received[] = [];
let failNext = 0;
let receiver: ReturnType<typeof Bun.serve>;
let base: string;

beforeAll(() => {
  receiver = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (failNext > 0) {
        failNext--;
        return new Response("busy", { status: 503 });
      }
      received.push({ path: new URL(req.url).pathname, alert: (await req.json()) as Alert });
      return new Response(null, { status: 204 });
    },
  });
  base = `http://127.0.0.1:${receiver.port}`;
});
afterAll(() => receiver.stop(true));

let vendor: Vendor | undefined;
let t: TestAgent | undefined;
afterEach(async () => {
  await disposeAgent(t);
  vendor?.cleanup();
  t = undefined;
  vendor = undefined;
  received = [];
  failNext = 0;
});

test("a rejected update is POSTed to both the vendor's and the admin's endpoint", async () => {
  vendor = await makeVendor();
  await vendor.release("TestText", 1, { "data.txt": "good" });
  t = await startAgent(vendor, { alertSinks: alertSinksFromUrls([`${base}/vendor`, `${base}/admin`]) });
  await t.agent.update();
  await vendor.release("TestText", 2, { "data.txt": "next" });
  // Corrupt the published package in place: the index still names the original digest.
  const dir = join(vendor.repo, "packages/TestText");
  const file = join(dir, readdirSync(dir).find((f) => f.startsWith("TestText-2-"))!);
  const bytes = await Bun.file(file).bytes();
  bytes[bytes.length - 2000] = (bytes[bytes.length - 2000] ?? 0) ^ 0xff;
  writeFileSync(file, bytes);

  const report = await t.agent.update();
  await t.stop(); // flushes in-flight alert deliveries
  expect(report.rejected[0]?.code).toBe("UPD_HASH_MISMATCH");
  expect(received.map((r) => r.path).sort()).toEqual(["/admin", "/vendor"]);
  for (const { alert } of received) {
    expect(alert.kind).toBe("update-rejected");
    expect(alert.code).toBe("UPD_HASH_MISMATCH");
    expect(alert.type).toBe("TestText");
    expect(alert.file).toContain("TestText-2-");
    expect(alert.group).toBe("public-1");
    expect(typeof alert.host).toBe("string");
  }
  await t.restart();
  expect(await liveText(t.agent)).toBe("good");
});

test("delivery retries a 503 and then succeeds", async () => {
  failNext = 1;
  const sink = new HttpAlertSink(`${base}/retry`, { attempts: 3 });
  await sink.send({
    kind: "update-rejected",
    at: new Date().toISOString(),
    host: "h",
    agentVersion: "0",
    group: "g",
    code: "UPD_TIMEOUT",
    reason: "test",
  });
  expect(received.map((r) => r.path)).toEqual(["/retry"]);
});

test("an unreachable alert endpoint never throws into the caller", async () => {
  const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const url = `http://127.0.0.1:${dead.port}/x`;
  dead.stop(true);
  const sink = new HttpAlertSink(url, { attempts: 1, timeoutMs: 500 });
  await expect(
    sink.send({
      kind: "handler-failed",
      at: "",
      host: "",
      agentVersion: "",
      group: "",
      code: "X",
      reason: "",
    }),
  ).resolves.toBeUndefined();
});
