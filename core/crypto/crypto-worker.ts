/**
 * `agent crypto-worker` (hidden; bin/agent.ts starts it without the command
 * tree): checks signatures for the process that started it
 * (remote-trust.ts). Requests arrive as JSON lines on stdin (the signed bytes
 * in base64) and are answered in order on stdout; the worker exits when
 * stdin closes. It reads no file and keeps nothing but the parsed trust
 * stores of the PEM bundles it was sent.
 */

import { describeError, isOutpostError } from "../errors.ts";
import { z } from "../schema/zod.ts";
import type { TrustStore } from "./cms.ts";
import { jsonLines, type WireFailure } from "./remote-trust.ts";

/**
 * `confine` runs once every module the checks need is loaded and before the first request is
 * read: bin/agent.ts restricts the process there (Landlock: no file, no network), since from then
 * on it only parses what it is sent.
 */
export async function runCryptoWorker(confine: () => void = () => {}): Promise<void> {
  const [{ TrustStore }, { verifyDetached }, { sha256Hex }] = await Promise.all([
    import("./cms.ts"),
    import("./cms-verify.ts"),
    import("./digest.ts"),
  ]);
  confine();
  // Built here, not at module level: this process starts to answer, and answers nothing else.
  const Base64 = z.string().check(z.regex(/^[A-Za-z0-9+/]*={0,2}$/));
  const Request = z.discriminatedUnion("op", [
    z.object({ id: z.int(), op: z.literal("trust"), pem: z.string(), source: z.string() }),
    z.object({
      id: z.int(),
      op: z.literal("verify"),
      pem: z.string(),
      source: z.string(),
      content: Base64,
      signature: Base64,
      now: z.number(),
      file: z.string(),
      requiredEku: z.optional(z.string()),
    }),
  ]);
  const stores = new Map<string, TrustStore>();
  const storeFor = (pem: string, source: string) => {
    let store = stores.get(pem);
    if (!store) {
      store = TrustStore.fromPem(pem, source);
      stores.set(pem, store);
    }
    return store;
  };
  const out = Bun.stdout.writer();
  const reply = (m: unknown) => {
    out.write(`${JSON.stringify(m)}\n`);
    out.flush();
  };

  const handle = async (message: unknown) => {
    const id = (message as { id?: unknown })?.id;
    try {
      const req = Request.parse(message);
      if (req.op === "trust") {
        const store = storeFor(req.pem, req.source);
        reply({
          id,
          ok: {
            roots: store.roots.map((r) => ({
              subject: r.subject,
              notAfter: r.notAfter.getTime(),
              sha256: sha256Hex(new Uint8Array(r.rawData)),
            })),
          },
        });
        return;
      }
      const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));
      const v = await verifyDetached(
        bytes(req.content),
        bytes(req.signature),
        storeFor(req.pem, req.source),
        {
          now: new Date(req.now),
          file: req.file,
          ...(req.requiredEku ? { requiredEku: req.requiredEku } : {}),
        },
      );
      reply({
        id,
        ok: {
          signingTime: v.signingTime.getTime(),
          signerSubject: v.signerSubject,
          signerSha256: v.signerSha256,
        },
      });
    } catch (e) {
      const d = describeError(e);
      const failure: WireFailure = {
        name: isOutpostError(e) ? e.name : "SignatureError",
        code: isOutpostError(e) ? e.code : "SIG_VERIFIER_FAILED",
        message: d.message,
        ...(d.file ? { file: d.file } : {}),
        ...(isOutpostError(e) && e.details ? { details: e.details } : {}),
      };
      reply({ id, error: failure });
    }
  };
  for await (const line of jsonLines(Bun.stdin.stream())) {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      // Not our client: nothing sensible to answer.
      process.exit(2);
    }
    await handle(message);
  }
}
