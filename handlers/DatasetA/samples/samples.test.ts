import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  generateVendorKeys,
  idempotencyKey,
  importVendorPrivateKey,
  importVendorPublicKey,
  MAX_SAMPLE_BYTES,
  openSample,
  type SampleMeta,
  sealSample,
} from "./envelope.ts";
import { SampleQueue, SampleUploader } from "./queue.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

const keys = await generateVendorKeys();
const pub = await importVendorPublicKey(keys.publicPem);
const priv = await importVendorPrivateKey(keys.privatePem);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "outpost-samples-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
function receiver(outDir: string, port = 0): Receiver {
  const r = startReceiver({ outDir, key: priv, port });
  cleanups.push(() => r.stop());
  return r;
}

const exe = new Uint8Array(Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(2000, 7)]));
const request = (data = exe, detection = "Gen.Lookup.A") => ({
  data,
  path: "/home/alice/projects/secret/tool",
  sha256: sha(data),
  fileKind: "elf",
  detection: { name: detection, kind: "body", source: "main.ndb:7" },
  sxl: { verdict: "suspicious", sample: true },
});

describe("envelope", () => {
  const meta: SampleMeta = {
    schema: 1,
    idempotencyKey: idempotencyKey(sha(exe), "D"),
    sha256: sha(exe),
    size: exe.length,
    fileName: "tool",
    fileKind: "elf",
    detection: { name: "D", kind: "body" },
    agent: { version: "t", host: "h" },
    createdAt: new Date(0).toISOString(),
  };

  test("only the vendor key opens it, and it yields the file and metadata", async () => {
    const env = await sealSample(meta, exe, pub);
    expect(Buffer.from(env).includes(Buffer.from("tool"))).toBe(false);
    const opened = await openSample(env, priv);
    expect(opened.meta).toEqual(meta);
    expect(Buffer.from(opened.sample).equals(Buffer.from(exe))).toBe(true);
    const other = await importVendorPrivateKey((await generateVendorKeys()).privatePem);
    await expect(openSample(env, other)).rejects.toMatchObject({ code: "SMP_WRONG_KEY" });
  });

  test("a flipped bit anywhere (header or body) fails authentication", async () => {
    const env = await sealSample(meta, exe, pub);
    for (const at of [60, 140, env.length - 5]) {
      const bad = env.slice();
      bad[at]! ^= 1;
      await expect(openSample(bad, priv)).rejects.toMatchObject({ code: "SMP_DECRYPT_FAILED" });
    }
  });
});

describe("queue, uploader and receiver", () => {
  test("a queued sample is delivered, stored once, and never queued again", async () => {
    const state = tmp();
    const out = tmp();
    const r = receiver(out);
    const q = new SampleQueue({ dir: state, vendorKey: pub });
    expect((await q.enqueue(request())).status).toBe("queued");
    expect((await q.enqueue(request())).status).toBe("already-queued");
    const up = new SampleUploader(q, { url: r.url });
    await up.drain();
    expect(up.stats.sent).toBe(1);
    expect(q.pending()).toEqual([]);
    const key = idempotencyKey(sha(exe), "Gen.Lookup.A");
    expect(readFileSync(join(out, key, "sample.bin"))).toEqual(Buffer.from(exe));
    const meta = JSON.parse(readFileSync(join(out, key, "meta.json"), "utf8"));
    expect(meta).toMatchObject({
      fileName: "tool",
      detection: { name: "Gen.Lookup.A" },
      sxl: { verdict: "suspicious" },
    });
    // Only the base name travels.
    expect(JSON.stringify(meta)).not.toContain("alice");
    expect((await q.enqueue(request())).status).toBe("already-sent");
    expect(r.stats.stored).toBe(1);
  });

  test("queued samples survive an agent restart and are sent when the receiver is back", async () => {
    const state = tmp();
    const out = tmp();
    const down = receiver(out);
    const port = down.port;
    await down.stop();
    const q1 = new SampleQueue({ dir: state, vendorKey: pub });
    await q1.enqueue(request());
    await q1.enqueue(request(exe.slice(0, 1000), "Gen.Lookup.B"));
    const up1 = new SampleUploader(q1, { url: `http://127.0.0.1:${port}/v1/samples`, timeoutMs: 2000 });
    await up1.drain();
    expect(up1.stats.retries).toBe(2);
    expect(q1.pending()).toHaveLength(2);
    // "Restart": new objects over the same state directory, receiver back on the same port.
    const r = receiver(out, port);
    const q2 = new SampleQueue({ dir: state, vendorKey: pub });
    const up2 = new SampleUploader(q2, { url: r.url });
    await up2.drain();
    expect(up2.stats.sent).toBe(2);
    expect(q2.pending()).toEqual([]);
    expect(readdirSync(out).filter((n) => !n.startsWith("."))).toHaveLength(2);
  });

  test("an agent that dies after the upload but before recording it resends, and the receiver does not store twice", async () => {
    const state = tmp();
    const out = tmp();
    const r = receiver(out);
    const q1 = new SampleQueue({ dir: state, vendorKey: pub });
    await q1.enqueue(request());
    // The request reaches the receiver; the agent "dies" before it sees the answer.
    const dying = new SampleUploader(q1, {
      url: r.url,
      fetch: (async (url: string, init: RequestInit) => {
        await fetch(url, init);
        throw new Error("killed before the response was handled");
      }) as unknown as typeof fetch,
    });
    await dying.drain();
    expect(r.stats.stored).toBe(1);
    expect(q1.pending()).toHaveLength(1);
    const q2 = new SampleQueue({ dir: state, vendorKey: pub });
    const up = new SampleUploader(q2, { url: r.url });
    await up.drain();
    expect(up.stats.duplicates).toBe(1);
    expect(r.stats).toEqual({ stored: 1, duplicates: 1, rejected: 0 });
    expect(q2.sent().map((s) => s.receiver)).toEqual(["duplicate"]);
    expect(readdirSync(out).filter((n) => !n.startsWith("."))).toHaveLength(1);
  });

  test("503 with Retry-After is retried no earlier than asked; a 4xx is given up and kept for an operator", async () => {
    let answer = 503;
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response("busy", { status: answer, headers: { "retry-after": "120" } }),
    });
    cleanups.push(() => server.stop(true));
    let now = 0;
    const state = tmp();
    const q = new SampleQueue({ dir: state, vendorKey: pub });
    await q.enqueue(request());
    const up = new SampleUploader(q, {
      url: `http://127.0.0.1:${server.port}/x`,
      now: () => now,
      random: () => 0.5,
    });
    await up.drain();
    expect(up.stats.attempts).toBe(1);
    now = 119_000;
    await up.drain();
    expect(up.stats.attempts).toBe(1);
    now = 121_000;
    answer = 400;
    await up.drain();
    expect(up.stats.attempts).toBe(2);
    expect(up.stats.failed).toBe(1);
    expect(q.pending()).toEqual([]);
    expect(readdirSync(join(state, "failed")).sort()).toEqual([
      `${idempotencyKey(sha(exe), "Gen.Lookup.A")}.json`,
      `${idempotencyKey(sha(exe), "Gen.Lookup.A")}.sample`,
    ]);
  });

  test("the receiver refuses envelopes it cannot attribute or verify", async () => {
    const out = tmp();
    const r = receiver(out);
    const env = await sealSample(
      {
        schema: 1,
        idempotencyKey: "a".repeat(64),
        sha256: sha(exe),
        size: exe.length,
        fileName: "x",
        fileKind: "elf",
        detection: { name: "D", kind: "body" },
        agent: { version: "t", host: "h" },
        createdAt: "now",
      },
      exe,
      pub,
    );
    const post = (key: string, body: Uint8Array) =>
      fetch(r.url, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: body as Uint8Array<ArrayBuffer>,
      });
    expect((await post("b".repeat(64), env)).status).toBe(400); // key differs from the sealed one
    expect((await post("nope", env)).status).toBe(400);
    expect((await post("c".repeat(64), new Uint8Array(300))).status).toBe(400);
    expect(r.stats.stored).toBe(0);
    expect(existsSync(join(out, "b".repeat(64)))).toBe(false);
  });

  test("samples over 10 MB are refused at the queue", async () => {
    const q = new SampleQueue({ dir: tmp(), vendorKey: pub });
    const big = new Uint8Array(MAX_SAMPLE_BYTES + 1);
    expect((await q.enqueue(request(big))).status).toBe("refused");
  });
});
