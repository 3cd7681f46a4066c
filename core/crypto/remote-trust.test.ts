import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SignatureError } from "../errors.ts";
import { makeSigner, TEST_NOW, type TestSigner } from "../store/testkit.ts";
import { signDetached } from "./cms-sign.ts";
import { verifyDetached } from "./cms-verify.ts";
import { CryptoWorkerClient, RemoteTrust } from "./remote-trust.ts";
import { verifySignature } from "./verify.ts";

let dir: string;
let signer: TestSigner;
let other: TestSigner;
const content = new TextEncoder().encode('{"type":"Flags","version":3}\n');
let signature: Uint8Array;
const opts = { now: TEST_NOW, file: "packages/Flags-3.tar" };

/** Resolves once `cond` holds, polling; fails after `ms` (no fixed sleep decides the outcome). */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await Bun.sleep(10);
  }
}

/** What a check throws, as the fields a user sees. */
async function failure(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    const err = e as SignatureError;
    return {
      class: err.constructor.name,
      code: err.code,
      message: err.message,
      file: err.file,
      details: err.details,
    };
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "outpost-remote-trust-"));
  signer = await makeSigner(join(dir, "a"));
  other = await makeSigner(join(dir, "b"));
  signature = await signDetached(content, signer.keys, { signingTime: TEST_NOW });
}, 30_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("RemoteTrust: the checks in a worker process give the in-process verdicts", () => {
  const worker = new CryptoWorkerClient(undefined, 60_000);
  afterAll(() => worker.close());

  test("a good signature: the same signer, subject and signing time", async () => {
    const remote = await RemoteTrust.load(signer.rootPem, worker);
    expect(remote.fingerprints()).toEqual(signer.trust.fingerprints());
    expect(remote.roots[0]!.notAfter.getTime()).toBe(signer.trust.roots[0]!.notAfter.getTime());
    const here = await verifyDetached(content, signature, signer.trust, opts);
    expect(await verifySignature(content, signature, remote, opts)).toEqual(here);
  });

  test("refusals keep their class, code, message, file and details", async () => {
    const remote = await RemoteTrust.load(signer.rootPem, worker);
    const foreign = await RemoteTrust.load(other.rootPem, worker);
    const tampered = new Uint8Array(content);
    tampered[3] = tampered[3]! ^ 1;
    const cases: [Uint8Array, Uint8Array, RemoteTrust, typeof signer.trust][] = [
      [tampered, signature, remote, signer.trust], // C16: digest
      [content, signature, foreign, other.trust], // C9: no chain to this root
      [content, new Uint8Array([0x30, 0x03, 1, 2, 3]), remote, signer.trust], // C1: not CMS
    ];
    for (const [c, s, r, local] of cases) {
      const there = await failure(verifySignature(c, s, r, opts));
      expect(there).toEqual(await failure(verifyDetached(c, s, local, opts)));
      expect(there.class).toBe("SignatureError");
      expect(String(there.code)).toStartWith("SIG_");
    }
    // A signing time in the future (C14) depends on `now`, which crosses too.
    expect(await failure(verifySignature(content, signature, remote, { ...opts, now: new Date(0) }))).toEqual(
      await failure(verifyDetached(content, signature, signer.trust, { ...opts, now: new Date(0) })),
    );
  });

  test("a trust file that is not PEM is CFG_TRUST_STORE naming it; a missing one too", async () => {
    const bad = join(dir, "bad.pem");
    writeFileSync(bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    const f = await failure(RemoteTrust.load(bad, worker));
    expect(f).toMatchObject({ class: "ConfigError", code: "CFG_TRUST_STORE", file: bad });
    const missing = await failure(RemoteTrust.load(join(dir, "nope.pem"), worker));
    expect(missing).toMatchObject({ class: "ConfigError", code: "CFG_TRUST_STORE" });
  });
});

describe("the worker process's life", () => {
  test("one process for a burst of checks; gone after the idle time; the next check starts another", async () => {
    const worker = new CryptoWorkerClient(undefined, 150);
    try {
      const remote = await RemoteTrust.load(signer.rootPem, worker);
      await Promise.all([1, 2, 3].map(() => remote.verify(content, signature, opts)));
      expect(worker.started).toBe(1);
      // Confined once its modules are loaded (bin/agent.ts): no new privileges, Landlock with no rule.
      const status = readFileSync(`/proc/${worker.pid}/status`, "utf8");
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      await until(() => !worker.running);
      await remote.verify(content, signature, opts);
      expect(worker.started).toBe(2);
    } finally {
      worker.close();
    }
  });

  test("a worker that dies fails the check (SIG_VERIFIER_FAILED naming the file); the next one starts fresh", async () => {
    let crash = true;
    const command = () =>
      crash ? ["sh", "-c", "read line; kill -SEGV $$"] : ["sh", "-c", "read line; echo not-json; sleep 5"];
    const worker = new CryptoWorkerClient(command, 60_000);
    try {
      const died = await failure(RemoteTrust.load(signer.rootPem, worker));
      expect(died).toMatchObject({
        class: "SignatureError",
        code: "SIG_VERIFIER_FAILED",
        file: signer.rootPem,
      });
      expect(String(died.message)).toContain("SIGSEGV");
      expect(worker.running).toBe(false);
      crash = false;
      const garbled = await failure(RemoteTrust.load(signer.rootPem, worker));
      expect(garbled).toMatchObject({ code: "SIG_VERIFIER_FAILED" });
      expect(String(garbled.message)).toContain("not JSON");
      expect(worker.started).toBe(2);
      expect(worker.running).toBe(false);
    } finally {
      worker.close();
    }
  });

  test("a worker that cannot be started fails the check the same way", async () => {
    const worker = new CryptoWorkerClient(() => ["/nonexistent/outpost-agent", "crypto-worker"]);
    const f = await failure(RemoteTrust.load(signer.rootPem, worker));
    expect(f).toMatchObject({ code: "SIG_VERIFIER_FAILED", file: signer.rootPem });
    expect(String(f.message)).toContain("could not be started");
    expect(worker.running).toBe(false);
  });

  test("a worker that hangs is killed after the check timeout; one that answers a non-verdict is refused", async () => {
    let hang = true;
    const command = () =>
      hang
        ? ["sh", "-c", "read line; sleep 30"]
        : ["sh", "-c", `read line; echo '{"id":2,"ok":{"roots":[{"subject":1}]}}'; sleep 5`];
    const worker = new CryptoWorkerClient(command, 60_000, 200);
    try {
      const hung = await failure(RemoteTrust.load(signer.rootPem, worker));
      expect(hung).toMatchObject({ code: "SIG_VERIFIER_FAILED", file: signer.rootPem });
      expect(String(hung.message)).toContain("did not answer within 200 ms");
      expect(worker.running).toBe(false);
      hang = false;
      const lied = await failure(RemoteTrust.load(signer.rootPem, worker));
      expect(lied).toMatchObject({ code: "SIG_VERIFIER_FAILED" });
      expect(String(lied.message)).toContain("not a verdict");
    } finally {
      worker.close();
    }
  });
});
