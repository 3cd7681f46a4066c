/**
 * The IPS service's decisions with a fake agent, fake packet-filter runner
 * and fake queue (no kernel, no namespace): overrides keep it off and are
 * re-evaluated when modules change; a trip goes RED, alerts and persists
 * across restarts; a newer EPIPS_data re-arms it; the admin switch wins
 * over config. netns.test.ts proves the same against the kernel.
 */

import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Alert } from "../../core/agent/alerts.ts";
import { EventBus } from "../../core/agent/events.ts";
import { parseConfig } from "../../core/config.ts";
import { HealthBoard } from "../../core/health/reasons.ts";
import { QueueRules, type Runner } from "../../core/sensors/nfqueue/rules.ts";
import { findOverrides } from "../NTP_OVERRIDES/format.ts";
import { reloadModule } from "../NTP_OVERRIDES/testkit.ts";
import { type IpsAgent, IpsService, type QueueLike } from "./service.ts";

let dir: string;
let ran: string[];
let queues: { closed: boolean }[];
let content: { type: string; version: number; handlerState: string }[];
let alerts: Omit<Alert, "at" | "host" | "agentVersion" | "group">[];
let agent: IpsAgent;
let health: HealthBoard;
let events: EventBus;

const entries = [{ module: "acme_filter", reason: "hangs the queue", fixedIn: "4.2" }];
const setVersion = (v: string) => reloadModule(join(dir, "sys"), "acme_filter", v);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-ips-svc-"));
  mkdirSync(join(dir, "sys", "acme_filter"), { recursive: true });
  writeFileSync(join(dir, "modules"), "acme_filter 16384 0 - Live 0x0\n");
  setVersion("4.1");
  ran = [];
  queues = [];
  alerts = [];
  content = [
    { type: "EPIPS_data", version: 1, handlerState: "loaded" },
    { type: "NTP_OVERRIDES", version: 1, handlerState: "loaded" },
  ];
  health = new HealthBoard();
  events = new EventBus();
  agent = {
    call: async (type: string, method: string, args: unknown) => {
      if (type === "NTP_OVERRIDES" && method === "check") {
        return { version: 1, matches: findOverrides(entries, (args as { modules: never[] }).modules) };
      }
      throw new Error(`unexpected call ${type}.${method}`);
    },
    contentOf: (type: string) =>
      (content.find((c) => c.type === type) ?? {
        type,
        version: null,
        handlerState: "not-installed",
      }) as never,
    hosts: () => [],
    events,
    health,
    alert: (a: (typeof alerts)[number]) => alerts.push(a),
  } as unknown as IpsAgent;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function service(overrides: Record<string, unknown> = {}): IpsService {
  const config = parseConfig({
    stateDir: join(dir, "state"),
    ips: {
      enabled: true,
      mode: "prevent",
      modules: { procModules: join(dir, "modules"), sysModule: join(dir, "sys"), pollMs: 60_000 },
      selfDisable: { checkIntervalMs: 60_000 },
      ...overrides,
    },
  });
  const run: Runner = (cmd) => {
    ran.push(cmd.join(" "));
    return { code: 0, stdout: "", stderr: "" };
  };
  const openQueue = (): QueueLike => {
    const q = { closed: false };
    queues.push(q);
    return {
      counters: { received: 0, accepted: 0, dropped: 0, overruns: 0, verdictErrors: 0 },
      verdict: () => {},
      close: async () => {
        q.closed = true;
      },
    };
  };
  return new IpsService(agent, config, { rules: new QueueRules(run), openQueue });
}

test("an override keeps the IPS off (info health, no rules); a fixed module version turns it on", async () => {
  const s = service();
  await s.start();
  expect(s.status()).toMatchObject({
    enabled: false,
    phase: "overridden",
    override: { module: "acme_filter" },
  });
  expect(s.status().reason).toBe("disabled by override (module acme_filter version 4.1): hangs the queue");
  expect(health.get("ips", "IPS_OVERRIDDEN")?.level).toBe("info");
  expect(ran.some((c) => c.startsWith("nft -f"))).toBe(false);
  setVersion("4.2");
  await s.reconcile("modules poll");
  expect(s.status()).toMatchObject({ enabled: true, phase: "active", backend: "nft", override: null });
  expect(health.get("ips", "IPS_OVERRIDDEN")).toBeUndefined();
  await s.stop();
  expect(queues[0]!.closed).toBe(true);
  expect(ran.at(-1)).toBe("nft delete table inet outpost_ips");
});

test("a trip: queue released, rules removed, RED, alert, remembered across restarts; a newer EPIPS_data re-arms", async () => {
  setVersion("5.0");
  const s = service();
  await s.start();
  expect(s.status().phase).toBe("active");
  await s.trip({ code: "IPS_VERDICT_SLOW", reason: "p99 900 ms > 100 ms" });
  expect(s.status()).toMatchObject({
    phase: "disabled-by-safety",
    safety: { code: "IPS_VERDICT_SLOW", contentVersion: 1 },
  });
  expect(queues[0]!.closed).toBe(true);
  expect(health.worst()).toBe("red");
  expect(alerts).toEqual([
    {
      kind: "ips-self-disabled",
      type: "EPIPS_data",
      code: "IPS_VERDICT_SLOW",
      reason: "p99 900 ms > 100 ms",
    },
  ]);
  expect(JSON.parse(readFileSync(join(dir, "state", "ips", "state.json"), "utf8")).safety.code).toBe(
    "IPS_VERDICT_SLOW",
  );
  await s.stop();

  // A restarted agent stays off and RED.
  health = new HealthBoard();
  (agent as { health: HealthBoard }).health = health;
  const again = service();
  await again.start();
  expect(again.status().phase).toBe("disabled-by-safety");
  expect(health.get("ips", "IPS_SELF_DISABLED")?.level).toBe("red");
  expect(queues).toHaveLength(1);

  // The same version reinstalled changes nothing; a newer one re-arms.
  await again.reconcile("content-installed");
  expect(again.status().phase).toBe("disabled-by-safety");
  content[0]!.version = 2;
  await again.reconcile("content-installed");
  expect(again.status()).toMatchObject({ phase: "active", safety: null });
  expect(health.worst()).toBe("green");
  await again.stop();
});

test("the administrator's switch wins over config, and enable clears a trip", async () => {
  setVersion("5.0");
  const s = service({ enabled: false });
  await s.start();
  expect(s.status()).toMatchObject({ phase: "off", reason: "disabled in config (ips.enabled)" });
  expect((await s.enable()).phase).toBe("active");
  await s.trip({ code: "IPS_PROBE_FAILED", reason: "probe failed 3 times" });
  expect((await s.disable()).phase).toBe("off");
  const e = await s.enable();
  expect(e).toMatchObject({ phase: "active", safety: null, admin: "enabled" });
  expect(health.get("ips", "IPS_SELF_DISABLED")).toBeUndefined();
  await s.stop();
});

test("no EPIPS_data loaded: nothing is queued", async () => {
  setVersion("5.0");
  content[0]!.handlerState = "not-installed";
  const s = service();
  await s.start();
  expect(s.status()).toMatchObject({ phase: "no-content", enabled: false });
  expect(queues).toHaveLength(0);
  await s.stop();
});
