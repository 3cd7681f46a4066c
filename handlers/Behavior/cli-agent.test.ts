/**
 * The rule author's and operator's tools, run as the real CLIs: keygen and
 * pack on the vendor side, key provisioning, an offline update, `agent rules
 * test` and `agent events replay`; then the control-plane routes and the
 * per-rule series in /metrics on a running agent.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type ControlPlane, startControlPlane } from "../../core/control/server.ts";
import type { ContentHandler } from "../../core/handler/contract.ts";
import { cliCommand } from "../../test/fixtures/compiled.ts";
import { makeVendor, TEST_GROUP, type Vendor } from "../../test/fixtures/vendor.ts";
import { type LuaTestAgent, rulesPayload, startLuaAgent, testKey } from "../_shared/lua/testkit.ts";
import { productRulesFeedHandler } from "../ProductRulesFeed/index.ts";
import { behaviorHandler } from "./index.ts";
import { behaviorRoutes } from "./routes.ts";

// Agents with real host processes: more than the default 5 s on a loaded machine.
setDefaultTimeout(30_000);

const ROOT = resolve(import.meta.dir, "../..");
const EXAMPLES = join(ROOT, "examples");
let vendor: Vendor;
let dir: string;

async function run(bin: "agent" | "contentctl", ...args: string[]) {
  const proc = Bun.spawn([...(await cliCommand(bin)), ...args], {
    cwd: dir,
    env: { ...process.env, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${bin} ${args.join(" ")} exited ${code}: ${stderr}${stdout}`);
  return stdout;
}
const json = async (bin: "agent" | "contentctl", ...args: string[]) =>
  JSON.parse(await run(bin, ...args, "--json"));

beforeAll(async () => {
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-rules-cli-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  vendor.cleanup();
});

describe("vendor and operator CLIs", () => {
  test("keygen, pack, publish, install-key, update; then rules test and events replay", async () => {
    const key = join(dir, "content-key.json");
    await json("contentctl", "rules", "keygen", "--out", key, "--id", "2026-a");
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(
      (await json("contentctl", "rules", "keygen", "--out", key, "--id", "2026-b", "--add")).keys,
    ).toEqual(["2026-a", "2026-b"]);
    for (const [type, version] of [
      ["ProductRulesFeed", "3"],
      ["Behavior", "5"],
    ] as const) {
      const out = join(dir, `${type}.opkg`);
      const packed = await json(
        "contentctl",
        "rules",
        "pack",
        join(EXAMPLES, type),
        "--type",
        type,
        "--version",
        version,
        "--keys",
        vendor.keysDir,
        "--key",
        key,
        "--out",
        out,
      );
      // Sealed with the newest key in the keyring.
      expect(packed).toMatchObject({ type, keyId: "2026-b" });
      expect(readFileSync(out).includes(Buffer.from("describe{"))).toBe(false);
      await run(
        "contentctl",
        "publish",
        out,
        "--repo",
        vendor.repo,
        "--group",
        TEST_GROUP,
        "--keys",
        vendor.keysDir,
      );
    }
    const state = join(dir, "state");
    expect((await json("agent", "rules", "install-key", key, "--state", state)).installed).toHaveLength(3);
    const update = await json(
      "agent",
      "update",
      "--once",
      "--repo",
      vendor.repo,
      "--group",
      TEST_GROUP,
      "--state",
      state,
      "--trust",
      vendor.trustPath,
    );
    expect(update.installed.map((i: { type: string }) => i.type).sort()).toEqual([
      "Behavior",
      "ProductRulesFeed",
    ]);

    const events = join(EXAMPLES, "Behavior", "events.jsonl");
    const tested = await json(
      "agent",
      "rules",
      "test",
      join(EXAMPLES, "Behavior"),
      "--events",
      events,
      "--product",
      join(EXAMPLES, "ProductRulesFeed"),
    );
    const rules = new Set(tested.detections.map((d: { rule: string }) => d.rule));
    for (const r of ["BEH-001-download-pipe-shell", "BEH-002-bash-reverse-shell", "BEH-014-crypto-mining"]) {
      expect(rules.has(r)).toBe(true);
    }
    expect(rules.has("BEH-011-credential-files")).toBe(false);
    // The cron file was written twice within the coalescing window: one detection.
    expect(
      tested.detections.filter((d: { rule: string }) => d.rule === "BEH-008-cron-persistence"),
    ).toHaveLength(1);
    expect(
      tested.detections.find((d: { rule: string }) => d.rule === "BEH-001-download-pipe-shell").line,
    ).toBe(7);

    const replayed = await json("agent", "events", "replay", events, "--state", state);
    expect(replayed.detections.length).toBe(tested.detections.length);
    expect(replayed.detections.map((d: { line: number }) => d.line)).toEqual(
      tested.detections.map((d: { line: number }) => d.line),
    );
  }, 90_000);
});

describe("control-plane routes and metrics", () => {
  let t: LuaTestAgent;
  let plane: ControlPlane;
  const key = testKey();

  beforeAll(async () => {
    await vendor.release(
      "Behavior",
      9,
      rulesPayload(
        "Behavior",
        {
          marker: `on("file.write", function(e) if e.path == "/etc/ld.so.preload" then detect{ title = "preload" } end end)`,
          broken: `on("file.write", function(e) error("boom") end)`,
        },
        key,
        { settings: { sensor: { processes: false, connections: false } } },
      ),
    );
    t = await startLuaAgent(vendor, [behaviorHandler, productRulesFeedHandler] as ContentHandler[], { key });
    await t.agent.update();
    plane = await startControlPlane({
      api: t.agent,
      stateDir: t.stateDir,
      extensions: [behaviorRoutes()],
      events: t.agent.events,
    });
  });
  afterAll(async () => {
    await plane?.stop();
    await t?.stop();
    if (t) rmSync(t.stateDir, { recursive: true, force: true });
  });

  const http = (path: string, init: RequestInit = {}) =>
    fetch(`${plane.url}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${plane.token}`,
        "content-type": "application/json",
        ...init.headers,
      },
    });

  test("POST /v1/events/inject runs events through the rules; bad events are refused with a code", async () => {
    const res = await http("/v1/events/inject", {
      method: "POST",
      body: JSON.stringify({
        events: [1, 2, 3, 4].map((i) => ({ type: "file.write", path: "/etc/ld.so.preload", i })),
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { detections: unknown[]; disabled: string[] };
    expect(body.detections).toHaveLength(4);
    expect(body.disabled).toEqual(["broken"]);

    const bad = await http("/v1/events/inject", {
      method: "POST",
      body: JSON.stringify({ events: [{ path: "/x" }] }),
    });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("HND_EVENT_INVALID");
    const unauthorised = await fetch(`${plane.url}/v1/events/inject`, { method: "POST", body: "[]" });
    expect(unauthorised.status).toBe(401);
  });

  test("GET /v1/rules/stats reports per-rule telemetry, and /metrics carries it", async () => {
    const stats = (await (await http("/v1/rules/stats")).json()) as {
      behavior: { rules: { name: string; timeMs: number }[] };
    };
    const marker = stats.behavior.rules.find((r: { name: string }) => r.name === "marker");
    expect(marker).toMatchObject({ calls: 4, detections: 4, faults: 0, disabled: false });
    expect(marker?.timeMs).toBeGreaterThan(0);
    expect(stats.behavior.rules.find((r: { name: string }) => r.name === "broken")).toMatchObject({
      faults: 3,
      disabled: true,
    });
    const text = await (await http("/metrics")).text();
    expect(text).toContain('outpost_rule_calls_total{rule="marker"} 4');
    expect(text).toContain('outpost_rule_detections_total{rule="marker"} 4');
    expect(text).toContain('outpost_rule_disabled{rule="broken"} 1');
    expect(text).toMatch(/outpost_rule_seconds_total\{rule="marker"\} [0-9.e-]+/);
  });
});
