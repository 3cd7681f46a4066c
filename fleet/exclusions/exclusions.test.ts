/**
 * Exclusions reach the fleet service: a heartbeat carries the summary, the
 * fleet asks for the list it does not hold, the agent sends it once (same
 * hash: not again), `contentctl fleet exclusions --agent ID` and the console
 * show it (behind operator login), and a list that does not match its
 * summary, or that no signed heartbeat announced, is refused. The agent is
 * enrolled: its heartbeats are signed and it holds no tenant token.
 *
 * On SQLite and on PostgreSQL (test/fixtures/fleet-db.ts), with two replicas
 * on one fleet database: the list sent through one is held for both — the
 * other does not ask for it again, and shows it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EventBus } from "../../core/agent/events.ts";
import { HeartbeatReporter } from "../../core/agent/heartbeat.ts";
import { enrollAgent, type HeartbeatSigner, loadSigner } from "../../core/agent/identity.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { ExclusionService } from "../../core/exclusions/service.ts";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { parseReleaseConfig } from "../config.ts";
import { type ReleaseServer, serveRelease } from "../server.ts";

setDefaultTimeout(30_000);
const TOKEN = "tenant-token-0123456789";
const OPERATOR = "operator-token-0123456789";
let agentId: string;
let signer: HeartbeatSigner;
const ROOT = resolve(import.meta.dir, "../..");
let vendor: Vendor;
let root: string;
let dbUrl: string | undefined;
let server: ReleaseServer;
let replica: ReleaseServer;
let exclusions: ExclusionService;

beforeAll(async () => {
  vendor = await makeVendor();
});
afterAll(async () => {
  vendor?.cleanup();
  await stopTestPostgres();
});

describe.each(BACKENDS)("fleet exclusions on %s", (backend: Backend) => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "outpost-fleet-excl-"));
    dbUrl = await freshDbUrl(backend);
    const config = {
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: join(root, "state"),
      groups: [{ name: "eng-test", promote: "manual", soakMinutes: 60 }],
      fleet: { tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)) } } },
      console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
    };
    writeFileSync(join(root, "release.json"), JSON.stringify(config));
    server = await serveRelease({ config: parseReleaseConfig(config), db: dbUrl, port: 0, autoTick: false });
    // A second replica on the same fleet database (the way `serve --release --db` scales out).
    replica = await serveRelease({ config: parseReleaseConfig(config), db: dbUrl, port: 0, autoTick: false });
    exclusions = new ExclusionService({ stateDir: join(root, "agent"), config: [], protectedPaths: [] });
    const identity = await enrollAgent({
      stateDir: join(root, "agent"),
      fleet: server.url.href,
      tenant: "acme",
      token: TOKEN,
    });
    agentId = identity.agentId;
    signer = (await loadSigner(join(root, "agent")))!;
    exclusions.replace("APPFEED", {
      "APPFEED:postgresql": {
        exclusions: [
          {
            kind: "path",
            value: "/var/lib/postgresql/15/main",
            scope: ["onAccess", "scan"],
            reason: "PostgreSQL data",
          },
        ],
      },
      "APPFEED:clamav": {
        exclusions: [{ kind: "process", value: "freshclam", scope: ["behavior"], reason: "updater" }],
      },
    });
  });
  afterAll(async () => {
    await replica?.stop();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test("the summary rides the heartbeat; the full list is sent once, on request, whichever replica asks; the CLI and both consoles show it", async () => {
    const api = new FakeAgentApi();
    const source = {
      status: () => ({ ...api.status(), exclusions: exclusions.summary() }),
      events: new EventBus(),
      exclusions,
    };
    const reporter = (to: ReleaseServer) =>
      new HeartbeatReporter(source, {
        url: new URL("/fleet/heartbeat", to.url).href,
        tenant: "acme",
        agentId,
        signer,
      });
    const rep = reporter(server);
    expect(await rep.send()).toBe(true);
    expect(rep.exclusionReports).toEqual({ sent: 1, failed: 0 });
    // The fleet holds this hash now: the next heartbeat is a plain 204, no list.
    expect(await rep.send()).toBe(true);
    expect(rep.exclusionReports).toEqual({ sent: 1, failed: 0 });
    // The other replica holds it too (one database): it does not ask again.
    const viaReplica = reporter(replica);
    expect(await viaReplica.send()).toBe(true);
    expect(viaReplica.exclusionReports).toEqual({ sent: 0, failed: 0 });

    const proc = Bun.spawn(
      [
        process.execPath,
        join(ROOT, "bin/contentctl.ts"),
        "fleet",
        "exclusions",
        "--config",
        join(root, "release.json"),
        "--agent",
        agentId,
        ...(dbUrl ? ["--db", dbUrl] : []),
        "--json",
      ],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
    );
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(code).toBe(0);
    const shown = JSON.parse(out);
    expect(shown).toMatchObject({
      agentId,
      tenant: "acme",
      count: 2,
      stale: false,
      hash: exclusions.summary().hash,
    });
    expect(shown.exclusions).toEqual(exclusions.list());

    const pageUrl = new URL(`/console/exclusions?agent=${agentId}`, replica.url);
    // What an endpoint excludes is for operators: the console's login gate covers this section too.
    expect((await fetch(pageUrl, { redirect: "manual" })).status).not.toBe(200);
    const page = await fetch(pageUrl, { headers: { authorization: `Bearer ${OPERATOR}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("/var/lib/postgresql/15/main");

    // A new set: its hash differs, so the fleet asks again — through the replica this time.
    exclusions.replace("APPFEED", {
      "APPFEED:clamav": {
        exclusions: [{ kind: "path", value: "/var/lib/clamav", scope: ["scan"], reason: "db" }],
      },
    });
    expect(await viaReplica.send()).toBe(true);
    expect(viaReplica.exclusionReports).toEqual({ sent: 1, failed: 0 });
    expect(await rep.send()).toBe(true);
    expect(rep.exclusionReports).toEqual({ sent: 1, failed: 0 });
    const json = await fetch(new URL(`/console/exclusions.json?agent=${agentId}`, server.url), {
      headers: { authorization: `Bearer ${OPERATOR}` },
    });
    expect(await json.json()).toMatchObject({
      hash: exclusions.summary().hash,
      count: 1,
      stale: false,
      exclusions: [expect.objectContaining({ value: "/var/lib/clamav", source: "APPFEED:clamav" })],
    });
    const all = await fetch(new URL("/console/exclusions.json", replica.url), {
      headers: { authorization: `Bearer ${OPERATOR}` },
    });
    expect(((await all.json()) as { agents: { agentId: string }[] }).agents.map((a) => a.agentId)).toEqual([
      agentId,
    ]);
  });

  test("a list that does not match its summary is refused with FLEET_INVALID", async () => {
    const list = exclusions.list();
    const hash = exclusions.summary().hash;
    const res = await fetch(new URL("/fleet/exclusions", server.url), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${TOKEN}`,
        "idempotency-key": `agent-excl-0002:${hash}`,
      },
      body: JSON.stringify({
        schema: 1,
        agentId: "agent-excl-0002",
        tenant: "acme",
        sentAt: new Date().toISOString(),
        summary: { count: list.length, hash },
        exclusions: list.map((e) => ({ ...e, value: `${e.value}-forged` })),
      }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("FLEET_INVALID");
    const wrong = await fetch(new URL("/fleet/exclusions", server.url), {
      method: "POST",
      headers: { authorization: "Bearer nope-nope-nope-nope" },
    });
    expect(wrong.status).toBe(401);
  });

  test("without a tenant token, only the list the agent's signed heartbeat announced is taken", async () => {
    const list = exclusions.list();
    const hash = exclusions.summary().hash;
    const post = (id: string) =>
      fetch(new URL("/fleet/exclusions", server.url), {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": `${id}:${hash}` },
        body: JSON.stringify({
          schema: 1,
          agentId: id,
          tenant: "acme",
          sentAt: new Date().toISOString(),
          summary: { count: list.length, hash },
          exclusions: list,
        }),
      });
    // An agent id no signed heartbeat ever named: refused, nothing stored.
    const forged = await post("agent-never-seen-01");
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as { code: string }).code).toBe("FLEET_UNAUTHORIZED");
    // The enrolled agent's list is already held (same hash): no second copy is taken either.
    expect((await post(agentId)).status).toBe(401);
  });
});
