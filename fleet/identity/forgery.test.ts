/**
 * The forgery matrix (docs/rollout.md, "Forgery matrix"), end to end against
 * the real fleet endpoint and release engine: a vendor group (eng-test,
 * vendorOnly) and a public group (public-1) with two honest customer tenants,
 * and an attacker who holds one customer tenant's token (acme) and
 * everything that token can enroll. Each attack is followed by a scheduler
 * tick; none may change what the release does. The 50k-agent row is in
 * fleet/gate.test.ts (pure: 50k agents over HTTP would not fit the suite's
 * time budget, and the enrollment limits stop them at the edge here).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import { type HeartbeatSigner, makeSigner } from "../../core/agent/identity.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { publish, readRepoIndex } from "../../core/repo/publish.ts";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../../test/fixtures/fleet-db.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import { parseReleaseConfig } from "../config.ts";
import { type ReleaseServer, serveRelease } from "../server.ts";

setDefaultTimeout(30_000);
afterAll(stopTestPostgres);

const tok = (t: string) => `${t}-tenant-token-0123456789abcdef`;
const hash = (t: string) => sha256Hex(new TextEncoder().encode(tok(t)));

let vendor: Vendor;
let root: string;
let server: ReleaseServer;
let clock = Date.now();

interface SimAgent {
  tenant: string;
  agentId: string;
  publicKey: string;
  signer: HeartbeatSigner;
}

async function newAgent(tenant: string, agentId: string): Promise<SimAgent> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ])) as unknown as CryptoKeyPair;
  const publicKey = Buffer.from(await crypto.subtle.exportKey("spki", pair.publicKey)).toString("base64url");
  return { tenant, agentId, publicKey, signer: makeSigner(tenant, agentId, pair.privateKey) };
}

async function enroll(a: SimAgent, token = tok(a.tenant)): Promise<[number, string]> {
  const res = await fetch(new URL("/fleet/enroll", server.url), {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      schema: 1,
      agentId: a.agentId,
      tenant: a.tenant,
      alg: "Ed25519",
      publicKey: a.publicKey,
    }),
  });
  const body = (await res.json()) as { code?: string; group?: string };
  return [res.status, body.code ?? body.group ?? ""];
}

function heartbeat(a: SimAgent, o: { group: string; version: number; crashed?: boolean }): Heartbeat {
  return {
    schema: 1,
    agentId: a.agentId,
    tenant: a.tenant,
    group: o.group,
    agentVersion: "1.0.0",
    sentAt: new Date(clock).toISOString(),
    health: o.crashed ? "red" : "green",
    content: [
      {
        type: "TestText",
        version: o.version,
        handlerState: o.crashed ? "crash-looping" : "loaded",
        badVersions: [],
        crashes: o.crashed ? 3 : 0,
        rollbacks: [],
      },
    ],
    rejected: 0,
    lastRejections: [],
  };
}

/** Signs with `signAs` (default: the agent itself) and posts; returns [status, code]. */
async function send(
  a: SimAgent,
  hb: Heartbeat,
  o: { signAs?: SimAgent; body?: string; bearer?: string; unsigned?: boolean } = {},
): Promise<[number, string]> {
  const withSeq = { ...hb, seq: hb.seq ?? a.signer.nextSeq(new Date(clock)) };
  const body = o.body ?? JSON.stringify(withSeq);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
  if (!o.unsigned) {
    Object.assign(headers, await (o.signAs ?? a).signer.headers(new TextEncoder().encode(body)));
    // Always claim to be `a`, whoever's key signed.
    headers["outpost-agent"] = `${a.tenant}/${a.agentId}`;
  }
  const res = await fetch(new URL("/fleet/heartbeat", server.url), { method: "POST", headers, body });
  const code = res.status === 204 ? "" : ((await res.json()) as { code: string }).code;
  return [res.status, code];
}

/** What the scheduler decides now, and what the release looks like: the thing no attack may change. */
async function decision() {
  const t = await server.tick();
  const r = (await server.engine.status()).releases[0];
  return {
    actions: t.actions.map((a) => a.kind),
    status: r?.status,
    groups: r?.groups.map((g) => [g.name, g.phase]),
  };
}

// The same matrix on each fleet database: the gate's SQL aggregate must hold as the in-memory one does.
describe.each(BACKENDS)("fleet on %s", (backend: Backend) => {
  const vendorAgents: SimAgent[] = [];
  const globex: SimAgent[] = [];
  const umbrella: SimAgent[] = [];

  beforeAll(async () => {
    clock = Date.now();
    vendor = await makeVendor();
    root = mkdtempSync(join(tmpdir(), "outpost-forgery-"));
    const v1 = await vendor.pack("TestText", 1, { "data.txt": "one" }, { now: new Date(clock - 3600_000) });
    for (const g of ["eng-test", "public-1"]) {
      await publish({
        repo: vendor.repo,
        group: g,
        keys: vendor.keysDir,
        packageBytes: v1,
        now: new Date(clock - 3600_000),
      });
    }
    const config = parseReleaseConfig({
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: join(root, "state"),
      groups: [
        { name: "eng-test", promote: "manual", soakMinutes: 30, vendorOnly: true },
        { name: "public-1", promote: "manual", soakMinutes: 30 },
      ],
      health: { threshold: 0.02, minSample: 20, minAdoption: 0.5, maxTenantShare: 0.1 },
      fleet: {
        tenants: {
          outpost: { tokenSha256: hash("outpost"), vendor: true, group: "eng-test" },
          globex: { tokenSha256: hash("globex"), group: "public-1" },
          umbrella: { tokenSha256: hash("umbrella"), group: "public-1" },
          // The attacker's tenant: a generous admin lets it enroll 300 agents.
          acme: { tokenSha256: hash("acme"), group: "public-1", enroll: { maxAgents: 400, perHour: 400 } },
          // A tenant with the default-sized limits, for the flood.
          initech: { tokenSha256: hash("initech"), group: "public-1", enroll: { maxAgents: 8, perHour: 5 } },
        },
      },
    });
    server = await serveRelease({
      config,
      db: await freshDbUrl(backend),
      port: 0,
      autoTick: false,
      now: () => new Date(clock),
    });
    for (let i = 0; i < 10; i++) vendorAgents.push(await newAgent("outpost", `vendor-agent-${i}`));
    for (let i = 0; i < 30; i++) globex.push(await newAgent("globex", `globex-agent-${i}`));
    for (let i = 0; i < 30; i++) umbrella.push(await newAgent("umbrella", `umbrella-agent-${i}`));
    for (const a of [...vendorAgents, ...globex, ...umbrella]) expect((await enroll(a))[0]).toBe(201);
    const file = join(root, "TestText-2.tar");
    writeFileSync(file, await vendor.pack("TestText", 2, { "data.txt": "two" }, { now: new Date(clock) }));
    await server.engine.start({ type: "TestText", version: 2, packageFile: file });
    clock += 60_000;
    for (const a of vendorAgents)
      expect(await send(a, heartbeat(a, { group: "eng-test", version: 2 }))).toEqual([204, ""]);
    for (const a of [...globex, ...umbrella]) await send(a, heartbeat(a, { group: "public-1", version: 1 }));
  });

  afterAll(async () => {
    await server?.stop();
    vendor?.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  describe("forgery matrix: eng-test (vendor group) decision", () => {
    let baseline: Awaited<ReturnType<typeof decision>>;
    beforeAll(async () => {
      baseline = await decision();
      expect(baseline).toEqual({
        actions: [],
        status: "active",
        groups: [
          ["eng-test", "live"],
          ["public-1", "pending"],
        ],
      });
    });

    test("a forged heartbeat without an enrolled key: unsigned, or signed by a key nobody enrolled (I1)", async () => {
      const stranger = await newAgent("acme", "vendor-agent-0");
      const crash = heartbeat(stranger, { group: "eng-test", version: 2, crashed: true });
      expect(await send(stranger, crash, { unsigned: true, bearer: tok("acme") })).toEqual([
        401,
        "FLEET_NOT_ENROLLED",
      ]);
      expect(await send(stranger, crash)).toEqual([401, "FLEET_NOT_ENROLLED"]);
      // Posing as an enrolled vendor agent with the attacker's own key: the signature does not verify (I2).
      const victim = vendorAgents[0]!;
      expect(
        await send(victim, heartbeat(victim, { group: "eng-test", version: 2, crashed: true }), {
          signAs: stranger,
        }),
      ).toEqual([401, "FLEET_BAD_SIGNATURE"]);
      expect(await decision()).toEqual(baseline);
    });

    test("a replayed heartbeat, and a captured one with its body changed (I4, I2, I5)", async () => {
      const a = vendorAgents[1]!;
      const hb = {
        ...heartbeat(a, { group: "eng-test", version: 2 }),
        seq: a.signer.nextSeq(new Date(clock)),
      };
      const body = JSON.stringify(hb);
      expect(await send(a, hb, { body })).toEqual([204, ""]);
      expect(await send(a, hb, { body })).toEqual([409, "FLEET_REPLAY"]);
      // The captured bytes edited to report a crash no longer match the agent's signature.
      const edited = body.replace('"health":"green"', '"health":"red"');
      const sig = await a.signer.headers(new TextEncoder().encode(body));
      const res = await fetch(new URL("/fleet/heartbeat", server.url), {
        method: "POST",
        headers: { "content-type": "application/json", ...sig },
        body: edited,
      });
      expect(res.status).toBe(401);
      // A heartbeat held back and sent later than the replay window allows.
      const old = {
        ...heartbeat(a, { group: "eng-test", version: 1 }),
        sentAt: new Date(clock - 3600_000).toISOString(),
      };
      expect(await send(a, old)).toEqual([400, "FLEET_STALE"]);
      expect(await decision()).toEqual(baseline);
    });

    test("a customer agent claiming eng-test is counted in its enrolled group, never in eng-test (I6, G1)", async () => {
      const mole = await newAgent("acme", "acme-mole-0001");
      expect(await enroll(mole)).toEqual([201, "public-1"]);
      expect(await send(mole, heartbeat(mole, { group: "eng-test", version: 2, crashed: true }))).toEqual([
        204,
        "",
      ]);
      expect((await server.fleet.get("acme", "acme-mole-0001"))?.group).toBe("public-1");
      expect(await decision()).toEqual(baseline);
    });

    test("an enrollment flood stops at the tenant's rate and count (E2, E3); an enrolled id cannot be taken over (E4)", async () => {
      const results: string[] = [];
      for (let i = 0; i < 40; i++)
        results.push((await enroll(await newAgent("initech", `flood-${i}-abcdef`)))[1]);
      expect(results.filter((r) => r === "public-1")).toHaveLength(5);
      expect(results.filter((r) => r === "FLEET_ENROLL_RATE")).toHaveLength(35);
      clock += 3600_000 + 60_000;
      const later: string[] = [];
      for (let i = 40; i < 50; i++)
        later.push((await enroll(await newAgent("initech", `flood-${i}-abcdef`)))[1]);
      expect(later.filter((r) => r === "public-1")).toHaveLength(3);
      expect(later.filter((r) => r === "FLEET_ENROLL_LIMIT")).toHaveLength(7);
      // Another tenant's token, or another key for an enrolled agent.
      expect(await enroll(await newAgent("outpost", "vendor-agent-x"), tok("acme"))).toEqual([
        403,
        "FLEET_WRONG_TENANT",
      ]);
      expect(await enroll(await newAgent("outpost", "vendor-agent-0"), tok("outpost"))).toEqual([
        409,
        "FLEET_ENROLLED",
      ]);
      clock -= 3600_000 + 60_000;
      expect(await decision()).toEqual(baseline);
    });
  });

  describe("forgery matrix: public-1 (customer group) decisions", () => {
    const acme: SimAgent[] = [];

    beforeAll(async () => {
      for (let i = 0; i < 300; i++)
        acme.push(await newAgent("acme", `acme-agent-${String(i).padStart(4, "0")}`));
      for (const a of acme) expect((await enroll(a))[0]).toBe(201);
      clock += 30 * 60_000;
      for (const a of vendorAgents) await send(a, heartbeat(a, { group: "eng-test", version: 2 }));
      await server.engine.promote({ actor: "test" });
      clock += 60_000;
      for (const a of [...globex, ...umbrella])
        await send(a, heartbeat(a, { group: "public-1", version: 2 }));
      expect((await decision()).groups).toEqual([
        ["eng-test", "soaked"],
        ["public-1", "live"],
      ]);
    });

    const judgement = async () => {
      const view = (await server.engine.status()).releases[0]!;
      return view.groups.find((g) => g.name === "public-1")!;
    };

    test("one customer tenant's forged crash reports hold the release and say so, but do not abort it (G5)", async () => {
      for (const a of acme.slice(0, 40))
        await send(a, heartbeat(a, { group: "public-1", version: 2, crashed: true }));
      const d = await decision();
      expect(d.actions).toEqual([]);
      expect(d.status).toBe("active");
      expect(await judgement()).toMatchObject({ verdict: "waiting" });
      expect((await judgement()).reason).toContain("without tenant acme alone");
      for (const a of acme.slice(0, 40)) await send(a, heartbeat(a, { group: "public-1", version: 2 }));
    });

    test("300 forged healthy agents do not mask a real failure spread over the honest tenants (G4)", async () => {
      for (const a of acme) await send(a, heartbeat(a, { group: "public-1", version: 2 }));
      for (const a of [...globex.slice(0, 3), ...umbrella.slice(0, 3)]) {
        await send(a, heartbeat(a, { group: "public-1", version: 2, crashed: true }));
      }
      // Unweighted, 6 of 360 (1.7 %) would sit under the 2 % threshold; acme weighs at most 6.7 agents here.
      const j = await judgement();
      expect(j.verdict).toBe("unhealthy");
      expect(j.health).toMatchObject({ exposed: 360, affected: 6 });
      const d = await decision();
      expect(d.actions).toContain("abort");
      expect(d.status).toBe("aborted");
      expect(readRepoIndex(vendor.repo, "public-1")?.content.TestText?.version).toBe(3);
      const trail = await server.engine.auditTrail();
      expect(trail.at(-1)).toMatchObject({ actor: "scheduler", action: "abort" });
    });
  });
});
