/**
 * Agent identity, agent side: `agent enroll` makes an Ed25519 key pair
 * (WebCrypto), keeps the private key in STATE/fleet-key.der (0600, never
 * sent anywhere), registers the public key with the fleet service using the
 * tenant token once, and records what the fleet answered in
 * STATE/fleet-identity.json. From then on every heartbeat is signed by the
 * agent key, with a sequence number the fleet service checks for replays;
 * the tenant token is no longer needed for heartbeats.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, UpdateError } from "../errors.ts";
import { atomicWriteFile, atomicWriteJson } from "../fsutil.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { loadAgentId } from "./heartbeat.ts";
import {
  AGENT_HEADER,
  ENROLL_PATH,
  type EnrollResponse,
  EnrollResponseSchema,
  formatSignatureHeader,
  SIGNATURE_ALG,
  SIGNATURE_HEADER,
} from "./identity-protocol.ts";

export const identityPaths = (stateDir: string) => ({
  identity: join(stateDir, "fleet-identity.json"),
  key: join(stateDir, "fleet-key.der"),
});

const IdentityFileSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    fleet: z.url(),
    agentId: z.string(),
    tenant: z.string(),
    group: z.string(),
    enrolledAt: z.iso.datetime(),
    publicKey: z.string(),
  }),
);
export type AgentIdentity = z.infer<typeof IdentityFileSchema>;

/** What the heartbeat reporter needs to sign: who, the next sequence number, and a signature. */
export interface HeartbeatSigner {
  readonly tenant: string;
  readonly agentId: string;
  nextSeq(now: Date): number;
  /** Headers for a body: signature and signer. */
  headers(body: Uint8Array<ArrayBuffer>): Promise<Record<string, string>>;
}

/** The identity this state dir enrolled with, or undefined when it never enrolled. */
export function loadIdentity(stateDir: string): AgentIdentity | undefined {
  const file = identityPaths(stateDir).identity;
  if (!existsSync(file)) return undefined;
  try {
    return IdentityFileSchema.parse(JSON.parse(readFileSync(file, "utf8")));
  } catch (e) {
    throw new ConfigError(
      "CFG_FLEET_IDENTITY",
      `${file}: unreadable fleet identity (${(e as Error).message})`,
      {
        file,
        cause: e,
      },
    );
  }
}

export async function loadSigner(stateDir: string): Promise<HeartbeatSigner | undefined> {
  const id = loadIdentity(stateDir);
  if (!id) return undefined;
  const keyFile = identityPaths(stateDir).key;
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("pkcs8", readFileSync(keyFile), { name: SIGNATURE_ALG }, false, [
      "sign",
    ]);
  } catch (e) {
    throw new ConfigError(
      "CFG_FLEET_IDENTITY",
      `${keyFile}: unreadable agent key (${(e as Error).message})`,
      {
        file: keyFile,
        cause: e,
      },
    );
  }
  return makeSigner(id.tenant, id.agentId, key);
}

export function makeSigner(tenant: string, agentId: string, key: CryptoKey): HeartbeatSigner {
  let last = 0;
  return {
    tenant,
    agentId,
    nextSeq(now) {
      // Time-based, so a restarted agent (which forgot `last`) still goes forward.
      last = Math.max(last + 1, now.getTime());
      return last;
    },
    async headers(body) {
      const sig = new Uint8Array(await crypto.subtle.sign({ name: SIGNATURE_ALG }, key, body));
      return { [SIGNATURE_HEADER]: formatSignatureHeader(sig), [AGENT_HEADER]: `${tenant}/${agentId}` };
    },
  };
}

/**
 * Enrolls this state dir with a fleet service. The key pair is made once and
 * kept: enrolling again (e.g. after the answer got lost) re-sends the same
 * public key, which the fleet accepts as the same agent.
 */
export async function enrollAgent(o: {
  stateDir: string;
  fleet: string;
  tenant: string;
  token: string;
  fetchImpl?: typeof fetch;
  timeoutMs?: number;
}): Promise<AgentIdentity> {
  const base = new URL(o.fleet);
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(base.hostname);
  if (base.protocol !== "https:" && !(base.protocol === "http:" && loopback)) {
    throw new ConfigError(
      "CFG_FLEET_INSECURE",
      `--fleet ${o.fleet}: the tenant token is only sent over https (or http to loopback)`,
    );
  }
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  const paths = identityPaths(o.stateDir);
  const agentId = loadAgentId(o.stateDir);
  const publicKey = await ensureKey(paths.key);
  const url = new URL(ENROLL_PATH, base);
  let res: Response;
  try {
    res = await (o.fetchImpl ?? fetch)(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${o.token}` },
      body: JSON.stringify({ schema: 1, agentId, tenant: o.tenant, alg: SIGNATURE_ALG, publicKey }),
      redirect: "error",
      signal: AbortSignal.timeout(o.timeoutMs ?? 15_000),
    });
  } catch (e) {
    throw new UpdateError(
      "UPD_ENROLL_FAILED",
      `${url.href}: enrollment request failed (${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
  const text = await res.text();
  if (!res.ok) {
    let code = "";
    try {
      code = (JSON.parse(text) as { code?: string }).code ?? "";
    } catch {}
    throw new UpdateError(
      "UPD_ENROLL_REFUSED",
      `${url.href}: enrollment refused (HTTP ${res.status}${code ? ` ${code}` : ""}): ${text.slice(0, 200)}`,
      { details: { status: res.status, code } },
    );
  }
  let answer: EnrollResponse;
  try {
    answer = EnrollResponseSchema.parse(JSON.parse(text));
  } catch (e) {
    throw new UpdateError(
      "UPD_ENROLL_REFUSED",
      `${url.href}: malformed enrollment answer (${(e as Error).message})`,
    );
  }
  if (answer.agentId !== agentId || answer.tenant !== o.tenant) {
    throw new UpdateError("UPD_ENROLL_REFUSED", `${url.href}: the answer names another agent or tenant`);
  }
  const identity: AgentIdentity = { schema: 1, fleet: base.href, publicKey, ...answer };
  atomicWriteJson(paths.identity, identity, 0o600);
  return identity;
}

/** The agent key's public half (SPKI, base64url); the key pair is made on first use, private half 0600. */
async function ensureKey(file: string): Promise<string> {
  let priv: CryptoKey;
  if (existsSync(file)) {
    priv = await crypto.subtle.importKey("pkcs8", readFileSync(file), { name: SIGNATURE_ALG }, true, [
      "sign",
    ]);
  } else {
    const pair = (await crypto.subtle.generateKey({ name: SIGNATURE_ALG }, true, [
      "sign",
      "verify",
    ])) as unknown as CryptoKeyPair;
    atomicWriteFile(file, new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey)), 0o600);
    return Buffer.from(await crypto.subtle.exportKey("spki", pair.publicKey)).toString("base64url");
  }
  // WebCrypto cannot derive the public half from a PKCS#8 key; a JWK export carries it (x).
  const jwk = await crypto.subtle.exportKey("jwk", priv);
  const pub = await crypto.subtle.importKey(
    "jwk",
    { kty: "OKP", crv: "Ed25519", x: jwk.x },
    { name: SIGNATURE_ALG },
    true,
    ["verify"],
  );
  return Buffer.from(await crypto.subtle.exportKey("spki", pub)).toString("base64url");
}
