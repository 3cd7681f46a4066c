/**
 * The vendor's sample receiver: `POST /v1/samples` with an envelope and an
 * Idempotency-Key header. A key already stored is answered 200
 * `{"status":"duplicate"}` without decrypting or storing anything; a new one
 * is decrypted, checked (the key inside matches the header, the sample
 * matches its SHA-256) and stored as `OUT/<key>/{meta.json,sample.bin}`
 * through a temp directory and one rename, so a submission is stored whole
 * or not at all, once.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "bun";
import { log } from "../../../core/log.ts";
import { lazySchema } from "../../../core/schema/lazy-schema.ts";
import { z } from "../../../core/schema/zod.ts";
import {
  HEADER_BYTES,
  MAX_SAMPLE_BYTES,
  openSample,
  SampleError,
  type VendorPrivateKey,
} from "./envelope.ts";

const logger = log.child({ component: "sample-receiver" });

const MetaSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    idempotencyKey: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
    sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
    size: z.int().check(z.gte(0), z.lte(MAX_SAMPLE_BYTES)),
    fileName: z.string().check(z.maxLength(4096)),
    fileKind: z.string().check(z.maxLength(64)),
    detection: z.strictObject({
      name: z.string().check(z.maxLength(256)),
      kind: z.string().check(z.maxLength(32)),
      source: z.optional(z.string().check(z.maxLength(512))),
    }),
    sxl: z.optional(z.strictObject({ verdict: z.string().check(z.maxLength(32)), sample: z.boolean() })),
    agent: z.strictObject({
      version: z.string().check(z.maxLength(64)),
      host: z.string().check(z.maxLength(256)),
    }),
    createdAt: z.string().check(z.maxLength(64)),
  }),
);

export interface ReceiverOptions {
  outDir: string;
  key: VendorPrivateKey;
  host?: string;
  port?: number;
}

export interface Receiver {
  url: string;
  port: number;
  stats: { stored: number; duplicates: number; rejected: number };
  stop(): Promise<void>;
}

const MAX_BODY = HEADER_BYTES + MAX_SAMPLE_BYTES + 64 * 1024;

export function startReceiver(o: ReceiverOptions): Receiver {
  mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
  const stats = { stored: 0, duplicates: 0, rejected: 0 };
  const json = (status: number, body: unknown) => Response.json(body, { status });
  const reject = (status: number, code: string, message: string) => {
    stats.rejected++;
    return json(status, { error: { code, message } });
  };
  const server: Server<undefined> = Bun.serve({
    hostname: o.host ?? "127.0.0.1",
    port: o.port ?? 0,
    maxRequestBodySize: MAX_BODY,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/v1/samples") return reject(404, "SMP_NOT_FOUND", "no such route");
      if (req.method !== "POST") return reject(405, "SMP_METHOD", "POST only");
      const key = req.headers.get("idempotency-key") ?? "";
      if (!/^[0-9a-f]{64}$/.test(key))
        return reject(400, "SMP_NO_KEY", "Idempotency-Key must be 64 lower-case hex digits");
      const dir = join(o.outDir, key);
      if (existsSync(dir)) {
        stats.duplicates++;
        return json(200, { status: "duplicate", key });
      }
      const body = new Uint8Array(await req.arrayBuffer());
      if (body.length > MAX_BODY) return reject(413, "SMP_TOO_LARGE", `body exceeds ${MAX_BODY} bytes`);
      let opened: { meta: unknown; sample: Uint8Array };
      try {
        opened = await openSample(body, o.key);
      } catch (e) {
        const code = e instanceof SampleError ? e.code : "SMP_MALFORMED";
        return reject(400, code, (e as Error).message);
      }
      const meta = MetaSchema.safeParse(opened.meta);
      if (!meta.success) return reject(400, "SMP_BAD_META", z.prettifyError(meta.error));
      if (meta.data.idempotencyKey !== key)
        return reject(400, "SMP_KEY_MISMATCH", "Idempotency-Key differs from the sealed one");
      const digest = createHash("sha256").update(opened.sample).digest("hex");
      if (digest !== meta.data.sha256 || opened.sample.length !== meta.data.size) {
        return reject(400, "SMP_DIGEST_MISMATCH", "sample does not match its SHA-256 and size");
      }
      const tmp = join(o.outDir, `.${key}.${process.pid}.${Math.random().toString(36).slice(2)}`);
      mkdirSync(tmp, { mode: 0o700 });
      writeFileSync(join(tmp, "meta.json"), `${JSON.stringify(meta.data, null, 2)}\n`, { mode: 0o600 });
      writeFileSync(join(tmp, "sample.bin"), opened.sample, { mode: 0o600 });
      writeFileSync(
        join(tmp, "received.json"),
        JSON.stringify({ receivedAt: new Date().toISOString(), bytes: body.length }),
        { mode: 0o600 },
      );
      try {
        renameSync(tmp, dir);
      } catch {
        // A concurrent request with the same key won the rename: this one is the duplicate.
        rmSync(tmp, { recursive: true, force: true });
        stats.duplicates++;
        return json(200, { status: "duplicate", key });
      }
      stats.stored++;
      logger.info("sample stored", { key, sha256: digest, detection: meta.data.detection.name });
      return json(201, { status: "stored", key });
    },
  });
  return {
    url: `http://${server.hostname}:${server.port}/v1/samples`,
    port: server.port ?? 0,
    stats,
    stop: async () => {
      await server.stop(true);
    },
  };
}
