/**
 * A version whose handler could not be asked (the host is down) or whose
 * signature check inside the handler could not run (USERAPPFEED's tenant
 * check in the crypto worker: SIG_VERIFIER_FAILED) is retried by the next
 * cycle, never marked bad; a handler that refuses the content marks it bad.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeVendor, TEST_GROUP, testRegistry, type Vendor } from "../../test/fixtures/vendor.ts";
import { TrustStore } from "../crypto/cms.ts";
import { HandlerError, SignatureError } from "../errors.ts";
import { InProcessHost } from "../host/in-process.ts";
import { log } from "../log.ts";
import { ContentStore } from "../store/store.ts";
import { runUpdateCycle } from "./client.ts";
import { UpdateMemory } from "./memory.ts";
import { DirTransport } from "./transport.ts";

let vendor: Vendor;
let trust: TrustStore;
const dirs: string[] = [];

beforeAll(async () => {
  vendor = await makeVendor();
  trust = await TrustStore.load(vendor.trustPath);
  await vendor.release("TestText", 1, { "data.txt": "one" });
});

afterAll(() => {
  vendor.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** An agent whose handler load fails once with `failure`, then works. */
function agentFailingOnce(failure: Error) {
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-not-the-contents-fault-"));
  dirs.push(stateDir);
  const registry = testRegistry();
  const store = new ContentStore(stateDir);
  store.open();
  const host = new InProcessHost(registry, log, {
    workDirFor: (g) => join(stateDir, "hosts", g),
    emit: () => {},
  });
  let failed = false;
  const prepare: InProcessHost["prepare"] = (type, view) => {
    if (failed) return host.prepare(type, view);
    failed = true;
    return Promise.reject(failure);
  };
  const cycle = () =>
    runUpdateCycle(
      {
        transport: new DirTransport(vendor.repo),
        trust,
        store,
        host: {
          validate: (t, v) => host.validate(t, v),
          prepare,
          commit: (p) => host.commit(p),
          discard: (p) => host.discard(p),
        },
        registry,
        memory: new UpdateMemory(stateDir),
        log,
        now: () => new Date(),
        limits: { indexMaxBytes: 1 << 20, timeoutMs: 10_000, minBytesPerSecond: 0 },
      },
      TEST_GROUP,
    );
  return { store, cycle };
}

test("a signature check that could not run: not marked bad, installed by the next cycle", async () => {
  const a = agentFailingOnce(
    new SignatureError(
      "SIG_VERIFIER_FAILED",
      "tenant-root.pem: signature not checked: the verifier process exited",
    ),
  );
  const first = await a.cycle();
  expect(first.installed).toEqual([]);
  expect(a.store.isBad("TestText", 1)).toBe(false);
  const second = await a.cycle();
  expect(second.installed).toEqual([{ type: "TestText", version: 1, previousVersion: null }]);
});

test("a host that could not be started: not marked bad either", async () => {
  const a = agentFailingOnce(new HandlerError("HND_HOST_SPAWN_FAILED", "host text: no such executable"));
  await a.cycle();
  expect(a.store.isBad("TestText", 1)).toBe(false);
});

test("a handler that refuses the content: marked bad, not installed again", async () => {
  const a = agentFailingOnce(new HandlerError("HND_TEXT_INVALID", "data.txt: refused"));
  await a.cycle();
  expect(a.store.isBad("TestText", 1)).toBe(true);
  expect((await a.cycle()).installed).toEqual([]);
});
