/**
 * T4 through the crypto worker: the appfeed host checks a tenant signature
 * in `agent crypto-worker`, not in its own heap (issue 21, Footprint). The
 * verdicts are the ones the in-process check gave; a check that did not run
 * is an error of the run, never a refusal of the tenant's rules.
 */
import "reflect-metadata";
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initKeys, KEY_FILES, loadSigningKeys } from "../../../core/crypto/keys.ts";
import { CryptoWorkerClient, type WorkerRequest } from "../../../core/crypto/remote-trust.ts";
import { SignatureError } from "../../../core/errors.ts";
import {
  TENANT_ROOT_FILE,
  TENANT_SIGNATURE,
  type TenantEvidence,
  tenantSign,
  tenantVerdict,
} from "./signature.ts";

setDefaultTimeout(60_000);

let dir: string;
let evidence: TenantEvidence;
const worker = new CryptoWorkerClient();

/** A work dir that trusts the root of the key directory `keys`. */
function workDirTrusting(name: string, keys: string): string {
  const w = join(dir, name);
  mkdirSync(w);
  copyFileSync(join(dir, keys, KEY_FILES.rootCert), join(w, TENANT_ROOT_FILE));
  return w;
}

/** The verdict for `e` in a work dir (named `name`) that trusts the root of `keys`. */
const verdictTrusting = (e: TenantEvidence, name: string, keys: string, w = worker) =>
  tenantVerdict(e, { workDir: workDirTrusting(name, keys) }, new Date(), w);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "outpost-tenant-sig-"));
  await Promise.all([
    initKeys(join(dir, "tenant"), { name: "Acme Tenant" }),
    initKeys(join(dir, "other"), { name: "Other Tenant" }),
  ]);
  const payload = new Map([["rules.json", new TextEncoder().encode('{"apps":[]}')]]);
  const signed = await tenantSign(payload, {
    type: "USERAPPFEED",
    version: 3,
    keys: await loadSigningKeys(join(dir, "tenant")),
  });
  const files = new Map([...payload, ...signed]);
  evidence = {
    type: "USERAPPFEED",
    version: 3,
    files: [...files.keys()],
    read: (f) => files.get(f)!,
  };
});

afterAll(() => {
  worker.close();
  rmSync(dir, { recursive: true, force: true });
});

test("signed by the trusted tenant root: the rules run, with the signer named", async () => {
  const v = await verdictTrusting(evidence, "trusts-tenant", "tenant");
  expect(v).toMatchObject({ run: true, signer: expect.stringContaining("Acme Tenant") });
  expect(worker.started).toBeGreaterThan(0);
});

test("T4: signed, but not by the root this agent trusts: refused", async () => {
  const v = await verdictTrusting(evidence, "trusts-other", "other");
  expect(v).toMatchObject({ run: false, refuse: true, hold: { code: "HND_TENANT_SIGNATURE" } });
  expect(v.run ? "" : v.hold.message).toContain("T4");
});

test("T4: a tampered signature is refused", async () => {
  const sig = evidence.read(TENANT_SIGNATURE).slice();
  sig[sig.length - 10]! ^= 0xff;
  const tampered: TenantEvidence = {
    ...evidence,
    read: (f) => (f === TENANT_SIGNATURE ? sig : evidence.read(f)),
  };
  const v = await verdictTrusting(tampered, "tampered", "tenant");
  expect(v).toMatchObject({ run: false, refuse: true, hold: { code: "HND_TENANT_SIGNATURE" } });
});

test("a check that could not run is the run's error, not a refusal of the tenant's rules", async () => {
  const w = workDirTrusting("broken-worker", "tenant");
  // No worker at all: the root cannot even be read into one.
  const absent = new CryptoWorkerClient(() => [join(dir, "no-such-agent"), "crypto-worker"]);
  expect(await tenantVerdict(evidence, { workDir: w }, new Date(), absent).catch((e) => e)).toMatchObject({
    code: "SIG_VERIFIER_FAILED",
  });
  // A worker that takes the root and dies on the signature (a parser crash, a timeout).
  class DiesOnVerify extends CryptoWorkerClient {
    override request(req: WorkerRequest, file: string): Promise<unknown> {
      if (req.op !== "verify") return super.request(req, file);
      return Promise.reject(
        new SignatureError("SIG_VERIFIER_FAILED", `${file}: the verifier process exited`),
      );
    }
  }
  const dies = new DiesOnVerify();
  try {
    const err = await tenantVerdict(evidence, { workDir: w }, new Date(), dies).catch((e) => e);
    expect(err).toMatchObject({ code: "SIG_VERIFIER_FAILED" });
    // The root was read into a real worker first: the failure came at the signature, inside T4's try.
    expect(dies.started).toBe(1);
  } finally {
    dies.close();
  }
});
