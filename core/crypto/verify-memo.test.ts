/**
 * The opt-in verification memo used by fleet simulations: a hit must never
 * accept anything a full verification would refuse.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { SignatureError } from "../errors.ts";
import { MAX_CLOCK_SKEW_MS, type TrustStore } from "./cms.ts";
import { signDetached } from "./cms-sign.ts";
import { verifyDetached } from "./cms-verify.ts";
import { makeCertChain, type TestChain } from "./testing.ts";

const NOW = new Date("2026-06-01T00:00:00Z");
const DAY = 86_400_000;
const content = new TextEncoder().encode("index v1\n");

let chain: TestChain;
let sig: Uint8Array;

beforeAll(async () => {
  chain = await makeCertChain({ now: NOW });
  sig = await signDetached(content, chain.signingKeys, { signingTime: NOW });
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(SignatureError);
    return (e as SignatureError).code;
  }
  throw new Error("expected a rejection");
}

const verify = (trust: TrustStore, now: Date, data = content, p7s = sig) =>
  verifyDetached(data, p7s, trust, { now, file: "index.json" });

describe("TrustStore.withVerificationMemo", () => {
  test("a plain store remembers nothing; a memo store remembers successful verifications only", async () => {
    expect(chain.trust.memo).toBeUndefined();
    const memo = chain.trust.withVerificationMemo();
    expect(memo.roots).toBe(chain.trust.roots);
    const first = await verify(memo, NOW);
    expect(memo.memo?.size).toBe(1);
    const again = await verify(memo, new Date(NOW.getTime() + 1000));
    expect(again).toEqual(first);
    expect(await code(verify(memo, NOW, new TextEncoder().encode("index v2\n")))).toBe("SIG_DIGEST_MISMATCH");
    expect(memo.memo?.size).toBe(1);
  });

  test("a hit still enforces certificate validity at the caller's clock", async () => {
    const memo = chain.trust.withVerificationMemo();
    await verify(memo, NOW);
    expect(await code(verify(memo, new Date(NOW.getTime() + 400 * DAY)))).toBe("SIG_CERT_EXPIRED");
    expect(await code(verify(memo, new Date(NOW.getTime() - 400 * DAY)))).toBe("SIG_CERT_NOT_YET_VALID");
  });

  test("a hit still refuses a signingTime in the caller's future", async () => {
    const memo = chain.trust.withVerificationMemo();
    await verify(memo, NOW);
    const early = new Date(NOW.getTime() - MAX_CLOCK_SKEW_MS - 60_000);
    expect(await code(verify(memo, early))).toBe("SIG_SIGNING_TIME_IN_FUTURE");
  });

  test("a memo does not leak across roots: another chain's store refuses the same bytes", async () => {
    const other = await makeCertChain({ now: NOW, name: "Other" });
    const memo = chain.trust.withVerificationMemo();
    await verify(memo, NOW);
    expect(await code(verify(other.trust.withVerificationMemo(), NOW))).toBe("SIG_UNTRUSTED_CHAIN");
  });
});
