import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UpdateError } from "../errors.ts";
import { Spool } from "./spool.ts";
import { DirTransport, HttpTransport, parseRetryAfter } from "./transport.ts";

const body = new Uint8Array(4096).map((_, i) => i & 0xff);
let server: ReturnType<typeof Bun.serve>;
let base: string;

beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/ok") {
        if (req.headers.get("if-none-match") === '"v1"')
          return new Response(null, { status: 304, headers: { etag: '"v1"' } });
        return new Response(body, { headers: { etag: '"v1"' } });
      }
      if (path === "/endless") {
        // Never ends, declares no length: only the byte cap can stop it.
        return new Response(
          new ReadableStream({
            pull(c) {
              c.enqueue(new Uint8Array(65536));
            },
          }),
        );
      }
      if (path === "/chunked") {
        // Many chunks, as a large package arrives: the spool must write every one, in order.
        let i = 0;
        return new Response(
          new ReadableStream({
            pull(c) {
              if (i === 64) return c.close();
              c.enqueue(body.subarray((i * 64) % body.length, ((i * 64) % body.length) + 64));
              i++;
            },
          }),
        );
      }
      if (path === "/busy") return new Response("later", { status: 503, headers: { "retry-after": "120" } });
      if (path === "/lying-length") return new Response(body, { headers: { "content-length": "999999999" } });
      if (path === "/silent") return new Promise<Response>(() => {}); // never answers
      if (path === "/trickle") {
        return new Response(
          new ReadableStream({
            async pull(c) {
              await Bun.sleep(50);
              c.enqueue(new Uint8Array(1));
            },
          }),
        );
      }
      return new Response("no", { status: 404 });
    },
  });
  base = `http://127.0.0.1:${server.port}/`;
});
afterAll(() => server.stop(true));

const opts = { maxBytes: 1 << 20, timeoutMs: 5000 };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UpdateError);
    return (e as UpdateError).code;
  }
  throw new Error("expected a rejection");
}

describe("HttpTransport", () => {
  const t = () => new HttpTransport(base);
  test("200 with ETag, then 304 on If-None-Match", async () => {
    const r = await t().get("ok", opts);
    expect(r.status).toBe(200);
    if (r.status === 200) expect(r.body).toEqual(body);
    expect(r.etag).toBe('"v1"');
    expect((await t().get("ok", { ...opts, etag: '"v1"' })).status).toBe(304);
  });
  test("a body over the cap is cut off (endless data)", async () => {
    expect(await codeOf(t().get("endless", { ...opts, maxBytes: 100_000 }))).toBe("UPD_TOO_LARGE");
  });
  test("a Content-Length over the cap is refused before reading", async () => {
    expect(await codeOf(t().get("lying-length", { ...opts, maxBytes: 1000 }))).toBe("UPD_TOO_LARGE");
  });
  test("Retry-After on 503 is surfaced", async () => {
    try {
      await t().get("busy", opts);
      throw new Error("expected failure");
    } catch (e) {
      expect((e as UpdateError).code).toBe("UPD_HTTP_STATUS");
      expect((e as UpdateError).details?.retryAfterSeconds).toBe(120);
    }
  });
  test("a server that never answers hits the deadline", async () => {
    expect(await codeOf(t().get("silent", { ...opts, timeoutMs: 150 }))).toBe("UPD_TIMEOUT");
  });
  test("a trickling server is cut off as stalled", async () => {
    expect(
      await codeOf(
        t().get("trickle", { ...opts, minBytesPerSecond: 1000, stallWindowMs: 200, timeoutMs: 5000 }),
      ),
    ).toBe("UPD_STALLED");
  });
  test("404 is UPD_NOT_FOUND and names the URL", async () => {
    const err = await t()
      .get("missing", opts)
      .then(
        () => undefined,
        (e: UpdateError) => e,
      );
    expect(err?.code).toBe("UPD_NOT_FOUND");
    expect(err?.file).toBe(`${base}missing`);
  });
  test("unreachable server is UPD_NETWORK", async () => {
    const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = dead.port;
    dead.stop(true);
    expect(await codeOf(new HttpTransport(`http://127.0.0.1:${port}`).get("x", opts))).toBe("UPD_NETWORK");
  });
});

describe("a transport with a spool", () => {
  const root = mkdtempSync(join(tmpdir(), "outpost-spooltx-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, "f"), body);
  const spool = new Spool(join(root, "spool"));
  const expected = new Uint8Array(64 * 64);
  for (let i = 0; i < 64; i++)
    expected.set(body.subarray((i * 64) % body.length, ((i * 64) % body.length) + 64), i * 64);

  test("HTTP: the body is the bytes sent, mapped from a file that is already unlinked", async () => {
    for (const [path, want] of [
      ["ok", body],
      ["chunked", expected],
    ] as const) {
      const r = await new HttpTransport(base).get(path, { ...opts, spool });
      if (r.status !== 200) throw new Error("expected 200");
      expect(readdirSync(spool.dir)).toEqual([]);
      expect(Buffer.from(r.body).equals(Buffer.from(want))).toBe(true);
      r.release?.();
      r.release?.();
      // Released: the file is unmapped, and the array reads zeros.
      expect(r.body.every((b) => b === 0)).toBe(true);
    }
  });
  test("HTTP: an aborted transfer leaves nothing in the spool", async () => {
    expect(await codeOf(new HttpTransport(base).get("endless", { ...opts, maxBytes: 100_000, spool }))).toBe(
      "UPD_TOO_LARGE",
    );
    expect(await codeOf(new HttpTransport(base).get("silent", { ...opts, timeoutMs: 150, spool }))).toBe(
      "UPD_TIMEOUT",
    );
    expect(readdirSync(spool.dir)).toEqual([]);
  });
  test("folder: the same bytes, copied into the spool and mapped", async () => {
    const r = await new DirTransport(root).get("f", { ...opts, spool });
    if (r.status !== 200) throw new Error("expected 200");
    expect(Buffer.from(r.body).equals(Buffer.from(body))).toBe(true);
    expect(r.release).toBeFunction();
    expect(readdirSync(spool.dir)).toEqual([]);
    expect(await codeOf(new DirTransport(root).get("f", { ...opts, maxBytes: 10, spool }))).toBe(
      "UPD_TOO_LARGE",
    );
    expect(readdirSync(spool.dir)).toEqual([]);
  });
});

describe("DirTransport", () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-dirtx-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "f"), body);
  test("reads with an ETag and answers 304 for the same file", async () => {
    const t = new DirTransport(dir);
    const r = await t.get("f", opts);
    expect(r.status).toBe(200);
    expect((await t.get("f", { ...opts, etag: r.etag })).status).toBe(304);
  });
  test("caps, missing files and escapes", async () => {
    const t = new DirTransport(dir);
    expect(await codeOf(t.get("f", { ...opts, maxBytes: 10 }))).toBe("UPD_TOO_LARGE");
    expect(await codeOf(t.get("nope", opts))).toBe("UPD_NOT_FOUND");
    expect(await codeOf(t.get("../etc/passwd", opts))).toBe("UPD_BAD_PATH");
  });
});

test("parseRetryAfter handles seconds and HTTP dates", () => {
  expect(parseRetryAfter("30")).toBe(30);
  expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThanOrEqual(58);
  expect(parseRetryAfter("soon")).toBeUndefined();
  expect(parseRetryAfter(null)).toBeUndefined();
});
