/**
 * Issue 12 item 6, with real host processes: no host reads the agent's
 * state directory or acts on the control plane, whatever its uid.
 *
 *  - the real query host (root, Landlock read-only `/**`) is asked through
 *    `agent query` for the SHA-256 of STATE/control.token and a listing of
 *    STATE: it finds nothing (its STATE is an empty tmpfs);
 *  - RepairKit itself, in the real repair host, runs a delivered rule that
 *    reads STATE/control.token and the behavior group's keyring through its
 *    Lua `fs` API: it gets nothing;
 *  - a hostile handler in the real repair group (root, read-write STATE,
 *    like RepairKit) that uses ambient APIs cannot read the token or another
 *    group's content keys and cannot use control.sock.
 *
 * Runs only as root (mount namespaces need it; without root the layer is
 * reported off, see state-view.unit.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "../../core/control/server.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { installKeyring } from "../../handlers/_shared/lua/keys.ts";
import { rulesPayload, testKey } from "../../handlers/_shared/lua/testkit.ts";
import { builtinGroups } from "../../handlers/groups.ts";
import { repairKitHandler } from "../../handlers/RepairKit/index.ts";
import { scheduledQueryPackHandler } from "../../handlers/ScheduledQueryPack/index.ts";
import { queryExtensions } from "../../handlers/ScheduledQueryPack/wiring.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";
import { type SecretsReport, secretsProbe } from "./secrets-probe.ts";

const root = process.getuid?.() === 0;
const PACK = { queries: { noop: { query: "SELECT 1 AS one", interval: 3600 } } };
/** A delivered RepairKit rule that reports what it can read of the agent's secrets. */
const SNOOP = `
check {
  id = "snoop.secrets",
  description = "reads what a repair rule must never see",
  run = function(c)
    c:problem("token=" .. tostring(fs.read("control.token")))
    c:problem("keys=" .. tostring(fs.read("hosts/behavior/content-keys.json")))
  end,
}
`;
const contentKey = testKey("state-view");

let vendor: Vendor;
let ta: TestAgent;
let plane: ControlPlane;

beforeAll(async () => {
  if (!root) return;
  vendor = await makeVendor();
  await vendor.release("ScheduledQueryPack", 1, { "packs/p.conf": JSON.stringify(PACK) });
  await vendor.release("SecretsProbe", 1, { "probe.txt": "probe" });
  await vendor.release("RepairKit", 1, rulesPayload("RepairKit", { snoop: SNOOP }, contentKey));
  ta = await startAgent(vendor, {
    registry: () => {
      const r = new HandlerRegistry();
      for (const g of builtinGroups) r.registerGroup(g);
      r.register(scheduledQueryPackHandler);
      r.register(repairKitHandler);
      return r.register(secretsProbe, new URL("./secrets-probe.ts", import.meta.url).href);
    },
  });
  // The content keyring in every Lua group's work dir, as `agent rules install-key` leaves it.
  const keyFile = join(ta.stateDir, "..", `${ta.stateDir.split("/").pop()}-ck.json`);
  writeFileSync(keyFile, JSON.stringify(contentKey.file), { mode: 0o600 });
  installKeyring(ta.stateDir, keyFile);
  rmSync(keyFile);
  plane = await startControlPlane({
    api: ta.agent,
    stateDir: ta.stateDir,
    extensions: queryExtensions(),
    events: ta.agent.events,
  });
  const report = await ta.agent.update();
  expect(report.installed.map((i) => i.type).sort()).toEqual([
    "RepairKit",
    "ScheduledQueryPack",
    "SecretsProbe",
  ]);
}, 60_000);

afterAll(async () => {
  await plane?.stop();
  await ta?.stop();
  if (ta) rmSync(ta.stateDir, { recursive: true, force: true });
  vendor?.cleanup();
});

async function agentQuery(sql: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "..", "..", "bin", "agent.ts"),
      "query",
      sql,
      "--json",
      "--state",
      ta.stateDir,
    ],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}

describe.skipIf(!root)("hosts cannot see the agent's state directory", () => {
  test("the query host returns no hash of STATE/control.token and sees no file in STATE", async () => {
    const token = join(ta.stateDir, "control.token");
    expect(readFileSync(token, "utf8").trim()).toBe(plane.token);
    const hash = await agentQuery(`SELECT path, sha256 FROM hash WHERE path = '${token}'`);
    expect(hash.code).toBe(0);
    expect(JSON.parse(hash.stdout).rows).toEqual([]);
    // Nor by another path to it: its own root (the view covers STATE there too), or /proc/PID/root of
    // init and of this supervisor, which lead into the mount namespace where STATE is not covered
    // (the host may not follow those at all: the sandbox keeps it from other processes).
    const around = [
      `/proc/self/root${token}`,
      `/proc/1/root${token}`,
      `/proc/${process.pid}/root${token}`,
      `/proc/${process.pid}/cwd/../..${token}`,
    ];
    const via = await agentQuery(
      `SELECT path, sha256 FROM hash WHERE path IN (${around.map((p) => `'${p}'`).join(", ")})`,
    );
    expect(via.code).toBe(0);
    expect(JSON.parse(via.stdout).rows).toEqual([]);
    // Positive control for the first form: its own root does lead to files outside STATE.
    const self = await agentQuery("SELECT sha256 FROM hash WHERE path = '/proc/self/root/etc/hostname'");
    expect(JSON.parse(self.stdout).rows).toHaveLength(1);
    const listing = await agentQuery(`SELECT path FROM file WHERE directory = '${ta.stateDir}'`);
    expect(listing.code).toBe(0);
    const paths = (JSON.parse(listing.stdout).rows as { path: string }[]).map((r) => r.path);
    // At most the mount points of its own view (STATE/hosts), never the agent's files.
    for (const p of paths) expect(p).not.toMatch(/control\.|content|update-state|agent\.lock/);
    // Positive control: the same query over a readable file outside STATE answers.
    const ok = await agentQuery("SELECT sha256 FROM hash WHERE path = '/etc/hostname'");
    expect(JSON.parse(ok.stdout).rows).toHaveLength(1);
  }, 60_000);

  test("status reports the view for each host", () => {
    const hosts = new Map((ta.agent.status().hosts ?? []).map((h) => [h.group, h]));
    expect(hosts.get("query")?.layers.stateView).toBe("hidden");
    expect(hosts.get("repair")?.layers.stateView).toBe("secrets-masked");
  });

  test("RepairKit's own rules read neither the token nor another group's keys", async () => {
    const keys = readFileSync(join(ta.stateDir, "hosts", "behavior", "content-keys.json"), "utf8");
    const report = (await ta.agent.call("RepairKit", "run", { dryRun: true })) as {
      checks: { id: string; messages: { text: string }[] }[];
    };
    const texts = report.checks.find((c) => c.id === "snoop.secrets")?.messages.map((m) => m.text) ?? [];
    expect(texts.length).toBeGreaterThanOrEqual(2);
    const all = texts.join("\n");
    expect(all).not.toContain(plane.token);
    expect(all).not.toContain(keys.slice(0, 40));
    expect(texts.find((t) => t.startsWith("keys="))).toBe("keys=nil");
  }, 60_000);

  test("a repair-group host cannot read the token or other groups' keys, nor use control.sock", async () => {
    const r = (await ta.agent.call("SecretsProbe", "probe", {})) as SecretsReport;
    expect(r.uid).toBe(0);
    expect(r.stateDir).toBe(ta.stateDir);
    expect(r.token.ok).toBe(false);
    expect(r.keys).toMatchObject({ ok: false, code: "ENOENT" });
    // Either the socket is not there for it, or the control plane refuses it: never an answer.
    if (r.socket.status !== undefined) {
      expect(r.socket.status).toBe(403);
      expect(r.socket.body).toContain("CTL_PEER_REFUSED");
    } else {
      expect(r.socket.code).toBeTruthy();
    }
    // What it changed in its view stayed there: neither the real token nor a shared device moved.
    expect(statSync(join(ta.stateDir, "control.token")).mode & 0o777).toBe(0o600);
    expect(statSync("/dev/null").mode & 0o777).toBe(0o666);
    // The agent itself still has everything.
    expect(readFileSync(join(ta.stateDir, "control.token"), "utf8").trim()).toBe(plane.token);
    const ok = await fetch(`${plane.url}/v1/status`, { headers: { authorization: `Bearer ${plane.token}` } });
    expect(ok.status).toBe(200);
  }, 60_000);
});
