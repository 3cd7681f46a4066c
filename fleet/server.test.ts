/**
 * The fleet endpoint and console on `contentctl serve --release`: heartbeat
 * authentication, size cap and validation; the console's headers and
 * content; the repository still served beside them; the fleet across
 * restarts — on SQLite and on PostgreSQL.
 */
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Heartbeat } from "../core/agent/heartbeat-protocol.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import { BACKENDS, type Backend, freshDbUrl, stopTestPostgres } from "../test/fixtures/fleet-db.ts";
import { makeVendor, type Vendor } from "../test/fixtures/vendor.ts";
import type { ReleaseAlert } from "./alerts.ts";
import { parseReleaseConfig, type ReleaseConfig } from "./config.ts";
import { type ReleaseServer, serveRelease } from "./server.ts";

const TOKEN = "acme-fleet-token-0123456789";
const OTHER = "other-fleet-token-0123456789";
const OPERATOR = "operator-console-token-0123456789";
const asOperator = { headers: { authorization: `Bearer ${OPERATOR}` } };

let vendor: Vendor;
let root: string;
let config: ReleaseConfig;
let server: ReleaseServer;
let troubles = 0;

setDefaultTimeout(30_000);
afterAll(stopTestPostgres);

// The same suite on each fleet database (SQLite always, PostgreSQL when installed).
describe.each(BACKENDS)("fleet server on %s", (backend: Backend) => {
  let dbUrl: string | undefined;
  // A repository per backend: the abort test moves eng-test on to v2 and back (as v3).
  beforeAll(async () => {
    vendor = await makeVendor();
    await vendor.release("TestText", 1, { "data.txt": "one" }, { group: "eng-test" });
  });
  afterAll(() => vendor.cleanup());
  beforeEach(async () => {
    root = mkdtempSync(join(tmpdir(), "outpost-fleet-srv-"));
    config = parseReleaseConfig({
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: join(root, "state"),
      groups: [{ name: "eng-test", promote: "manual", soakMinutes: 60 }],
      fleet: {
        tenants: {
          acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)), vendor: true },
          other: { tokenSha256: sha256Hex(new TextEncoder().encode(OTHER)) },
        },
        // These tests cover the unsigned (compatibility) path; signed heartbeats: fleet/identity/*.test.ts.
        identity: { allowUnenrolled: true },
      },
      console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
    });
    troubles = 0;
    dbUrl = await freshDbUrl(backend);
    server = await serveRelease({ config, db: dbUrl, port: 0, autoTick: false, onTrouble: () => troubles++ });
  });
  afterEach(async () => {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function heartbeat(over: Partial<Heartbeat> = {}): Heartbeat {
    return {
      schema: 1,
      agentId: "agent-0001",
      tenant: "acme",
      group: "eng-test",
      agentVersion: "1.0.0",
      sentAt: new Date().toISOString(),
      health: "green",
      content: [
        { type: "TestText", version: 1, handlerState: "loaded", badVersions: [], crashes: 0, rollbacks: [] },
      ],
      rejected: 0,
      lastRejections: [],
      ...over,
    };
  }

  const post = (body: string | Uint8Array | ReadableStream, headers: Record<string, string> = {}) =>
    fetch(new URL("/fleet/heartbeat", server.url), {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
      body,
    });

  async function codeOf(res: Response): Promise<[number, string]> {
    return [res.status, ((await res.json()) as { code: string }).code];
  }

  describe("POST /fleet/heartbeat", () => {
    test("a valid heartbeat with its tenant's token is stored", async () => {
      const res = await post(JSON.stringify(heartbeat()));
      expect(res.status).toBe(204);
      expect(await server.fleet.list()).toEqual([
        expect.objectContaining({
          id: "acme/agent-0001",
          group: "eng-test",
          content: { TestText: expect.objectContaining({ version: 1 }) },
        }),
      ]);
      expect(troubles).toBe(0);
    });

    test("no token, an unknown token, or another tenant's token is refused", async () => {
      expect(await codeOf(await post(JSON.stringify(heartbeat()), { authorization: "" }))).toEqual([
        401,
        "FLEET_UNAUTHORIZED",
      ]);
      expect(
        await codeOf(
          await post(JSON.stringify(heartbeat()), { authorization: "Bearer not-a-known-token-xx" }),
        ),
      ).toEqual([401, "FLEET_UNAUTHORIZED"]);
      expect(
        await codeOf(await post(JSON.stringify(heartbeat()), { authorization: `Bearer ${OTHER}` })),
      ).toEqual([403, "FLEET_WRONG_TENANT"]);
      expect(await server.fleet.count()).toBe(0);
    });

    test("bodies over 16 KiB are refused whether or not they declare their length", async () => {
      const big = JSON.stringify(heartbeat({ agentVersion: "x".repeat(20_000) }));
      expect(await codeOf(await post(big))).toEqual([413, "FLEET_TOO_LARGE"]);
      const bytes = new TextEncoder().encode(big);
      const stream = new ReadableStream({
        start(c) {
          for (let i = 0; i < bytes.length; i += 1000) c.enqueue(bytes.subarray(i, i + 1000));
          c.close();
        },
      });
      expect(await codeOf(await post(stream))).toEqual([413, "FLEET_TOO_LARGE"]);
    });

    test("wrong media type, broken JSON and schema violations are refused with the reason", async () => {
      expect(await codeOf(await post(JSON.stringify(heartbeat()), { "content-type": "text/plain" }))).toEqual(
        [415, "FLEET_MEDIA_TYPE"],
      );
      expect(await codeOf(await post("{nope"))).toEqual([400, "FLEET_INVALID"]);
      const res = await post(JSON.stringify({ ...heartbeat(), agentId: "../../etc" }));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toContain("agentId");
      const crashes = await post(
        JSON.stringify(
          heartbeat({
            content: [
              {
                type: "TestText",
                version: 1,
                handlerState: "loaded",
                badVersions: [],
                crashes: -1,
                rollbacks: [],
              },
            ],
          }),
        ),
      );
      expect(crashes.status).toBe(400);
      expect(await server.fleet.count()).toBe(0);
    });

    test("unknown top-level fields from newer agents are dropped, not refused", async () => {
      expect((await post(JSON.stringify({ ...heartbeat(), futureField: { x: 1 } }))).status).toBe(204);
    });

    test("a heartbeat reporting a fresh rollback, a crash or health red wakes the scheduler", async () => {
      await post(JSON.stringify(heartbeat({ health: "red" })));
      await post(
        JSON.stringify(
          heartbeat({
            agentId: "agent-0002",
            content: [
              {
                type: "TestText",
                version: 1,
                handlerState: "loaded",
                badVersions: [2],
                crashes: 0,
                rollbacks: [{ from: 2, to: 1, at: new Date().toISOString(), automatic: true }],
              },
            ],
          }),
        ),
      );
      const stale = new Date(Date.now() - 5 * 3600_000).toISOString();
      await post(
        JSON.stringify(
          heartbeat({
            agentId: "agent-0003",
            content: [
              {
                type: "TestText",
                version: 1,
                handlerState: "loaded",
                badVersions: [2],
                crashes: 0,
                rollbacks: [{ from: 2, to: 1, at: stale, automatic: true }],
              },
            ],
          }),
        ),
      );
      expect(troubles).toBe(2);
    });

    test("a version newly marked bad (a validation rejection) wakes the scheduler like a crash; the same list again does not", async () => {
      await post(JSON.stringify(heartbeat({ agentId: "agent-0004" })));
      expect(troubles).toBe(0);
      const rejected = (badVersions: number[]) =>
        heartbeat({
          agentId: "agent-0004",
          content: [
            { type: "TestText", version: 1, handlerState: "loaded", badVersions, crashes: 0, rollbacks: [] },
          ],
        });
      await post(JSON.stringify(rejected([2])));
      expect(troubles).toBe(1);
      await post(JSON.stringify(rejected([2])));
      expect(troubles).toBe(1);
    });
  });

  describe("console and repository on one listener", () => {
    test("GET /console is self-contained HTML under a strict CSP; ?fragment=1 is the body only", async () => {
      const res = await fetch(new URL("/console", server.url), asOperator);
      expect(res.status).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+'/);
      const html = await res.text();
      expect(html).toContain('data-group="eng-test"');
      expect(html).toContain("TestText v1");
      expect(html).not.toMatch(/(src|href)="https?:/);
      const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
      expect(html).toContain(`<script nonce="${nonce}">`);
      const frag = await (await fetch(new URL("/console?fragment=1", server.url), asOperator)).text();
      expect(frag).not.toContain("<script");
      expect(frag).toContain('id="groups"');
    });

    test("GET /console/status.json is the release status view", async () => {
      const view = (await (await fetch(new URL("/console/status.json", server.url), asOperator)).json()) as {
        groups: { name: string; content: Record<string, number> }[];
      };
      expect(view.groups).toEqual([expect.objectContaining({ name: "eng-test", content: { TestText: 1 } })]);
    });

    test("the repository is served as before; dot-files and other methods are not", async () => {
      const index = await fetch(new URL("/groups/eng-test/index.json", server.url));
      expect(index.status).toBe(200);
      const etag = index.headers.get("etag") ?? "";
      const again = await fetch(new URL("/groups/eng-test/index.json", server.url), {
        headers: { "if-none-match": etag },
      });
      expect(again.status).toBe(304);
      expect((await fetch(new URL("/groups/eng-test/.publish.lock", server.url))).status).toBe(404);
      expect((await fetch(new URL("/console", server.url), { method: "POST", ...asOperator })).status).toBe(
        404,
      );
    });

    test("the fleet survives a restart of the server (it lives in the database)", async () => {
      await post(JSON.stringify(heartbeat()));
      await server.stop();
      server = await serveRelease({ config, db: dbUrl, port: 0, autoTick: false });
      expect((await server.fleet.list()).map((a) => a.id)).toEqual(["acme/agent-0001"]);
    });
  });

  describe("abort latency on the live server", () => {
    // Runs last: it moves the shared repository's eng-test group on to v2 and back (as v3).
    test("a heartbeat that crosses the threshold aborts the release within a second, without waiting for a tick", async () => {
      await server.stop();
      let aborted!: (a: ReleaseAlert) => void;
      const alert = new Promise<ReleaseAlert>((resolve) => {
        aborted = resolve;
      });
      server = await serveRelease({
        db: dbUrl,
        config: { ...config, tickSeconds: 3600 },
        port: 0,
        alerter: { send: (a) => a.kind === "release-aborted" && aborted(a), flush: async () => {} },
      });
      const file = join(root, "TestText-2.tar");
      writeFileSync(file, await vendor.pack("TestText", 2, { "data.txt": "two" }));
      await server.engine.start({ type: "TestText", version: 2, packageFile: file });
      const sent = performance.now();
      const res = await post(
        JSON.stringify(
          heartbeat({
            content: [
              {
                type: "TestText",
                version: 1,
                handlerState: "loaded",
                badVersions: [2],
                crashes: 3,
                rollbacks: [{ from: 2, to: 1, at: new Date().toISOString(), automatic: true }],
              },
            ],
          }),
        ),
      );
      expect(res.status).toBe(204);
      const a = await alert;
      const latencyMs = performance.now() - sent;
      expect(a).toMatchObject({ release: "TestText-2", by: "health", revertedGroups: ["eng-test"] });
      expect(latencyMs).toBeLessThan(5000);
    });
  });
});
