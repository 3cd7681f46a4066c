import { describe, expect, test } from "bun:test";
import { StoreError } from "../errors.ts";
import { Channel, type ChannelOptions, type Notification, type ProtocolProblem } from "./channel.ts";
import { encodeFrame } from "./frame.ts";

/** Two channels wired back to back in memory, delivering asynchronously like a pipe. */
function pair(server: Partial<ChannelOptions> = {}, client: Partial<ChannelOptions> = {}) {
  const problems: ProtocolProblem[] = [];
  const notes: Notification[] = [];
  let toServer: (b: Uint8Array) => void = () => {};
  let toClient: (b: Uint8Array) => void = () => {};
  const a = new Channel({
    send: (f) => queueMicrotask(() => toServer(f)),
    maxInbound: 1 << 20,
    maxOutbound: 1 << 20,
    onProtocolError: (p) => problems.push(p),
    onNotification: (n) => notes.push(n),
    ...client,
  });
  const b = new Channel({
    send: (f) => queueMicrotask(() => toClient(f)),
    maxInbound: 1 << 20,
    maxOutbound: 1 << 20,
    ...server,
  });
  toServer = (f) => b.feed(f);
  toClient = (f) => a.feed(f);
  /** Injects raw bytes as if the server had written them. */
  const fromServer = (bytes: Uint8Array) => a.feed(bytes);
  return { client: a, server: b, problems, notes, fromServer };
}

describe("channel", () => {
  test("request/response with bytes both ways", async () => {
    const { client } = pair({
      onRequest: (method, args) => ({
        method,
        got: (args as { data: Uint8Array }).data.length,
        echo: new Uint8Array([42]),
      }),
    });
    const r = (await client.request("call", { data: new Uint8Array(5000) }, { timeoutMs: 1000 })) as {
      method: string;
      got: number;
      echo: Uint8Array;
    };
    expect(r.method).toBe("call");
    expect(r.got).toBe(5000);
    expect([...r.echo]).toEqual([42]);
  });

  test("errors keep their class, code and file across the channel", async () => {
    const { client } = pair({
      onRequest: () => {
        throw new StoreError("STORE_FILE_MISSING", "x.bin: gone", { file: "x.bin" });
      },
    });
    const err = await client.request("call", null, { timeoutMs: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: "STORE_FILE_MISSING", message: "x.bin: gone", file: "x.bin" });
  });

  test("a request that outlives its timeout fails with HND_IPC_TIMEOUT and the server sees the cancellation", async () => {
    let aborted: Promise<unknown> | undefined;
    const { client } = pair({
      onRequest: (_m, _a, ctx) => {
        aborted = new Promise((resolve) =>
          ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason)),
        );
        return new Promise(() => {});
      },
    });
    await expect(client.request("call", null, { timeoutMs: 30 })).rejects.toMatchObject({
      code: "HND_IPC_TIMEOUT",
    });
    expect(await aborted).toMatchObject({ code: "HND_IPC_CANCELLED" });
    expect(client.inFlight).toBe(0);
  });

  test("the caller can cancel; a late answer to a cancelled request is not sent", async () => {
    let release: (v: unknown) => void = () => {};
    const { client, problems } = pair({ onRequest: () => new Promise((r) => (release = r)) });
    const ctl = new AbortController();
    const pending = client.request("call", null, { timeoutMs: 5000, signal: ctl.signal });
    await Bun.sleep(0);
    ctl.abort();
    await expect(pending).rejects.toMatchObject({ code: "HND_IPC_CANCELLED" });
    release("too late");
    await Bun.sleep(0);
    expect(problems).toEqual([]);
  });

  test("answers for unknown ids and malformed messages are rejected and reported, never thrown", async () => {
    const { client, problems, fromServer } = pair({ onRequest: () => new Promise(() => {}) });
    const pending = client.request("call", null, { timeoutMs: 5000 });
    fromServer(encodeFrame({ t: "res", id: 999, ok: true, r: 1 }));
    fromServer(encodeFrame({ t: "bogus" }));
    // A malformed answer to a pending request fails that request at once.
    fromServer(encodeFrame({ t: "res", id: 1, ok: true, e: { code: "X", message: "both" } }));
    await expect(pending).rejects.toMatchObject({ code: "HND_IPC_PROTOCOL" });
    expect(problems.map((p) => [p.kind, p.fatal])).toEqual([
      ["unknown-id", false],
      ["bad-message", false],
      ["bad-message", false],
    ]);
  });

  test("garbage on the stream is fatal for the stream and reported once", async () => {
    const { client, problems, fromServer } = pair();
    fromServer(new TextEncoder().encode("Segmentation fault (core dumped)\n"));
    fromServer(encodeFrame({ t: "evt", type: "late" }));
    expect(problems.map((p) => [p.kind, p.fatal])).toEqual([["bad-magic", true]]);
    expect(client.closed).toBe(false);
  });

  test("notifications flow from server to client; results that cannot cross become error answers", async () => {
    const { client, server, notes } = pair({ onRequest: () => ({ when: new Date() }) });
    server.notify({ t: "evt", type: "detection", f: { name: "EICAR" } });
    server.notify({ t: "log", level: "warn", msg: "careful" });
    await expect(client.request("call", null, { timeoutMs: 1000 })).rejects.toMatchObject({
      code: "HND_IPC_UNSERIALIZABLE",
    });
    expect(notes.map((n) => n.t)).toEqual(["evt", "log"]);
  });

  test("close fails everything pending and everything after", async () => {
    const { client } = pair({ onRequest: () => new Promise(() => {}) });
    const pending = client.request("call", null, { timeoutMs: 5000 });
    client.close(Object.assign(new Error("host died"), { code: "HND_HOST_CRASHED" }));
    await expect(pending).rejects.toMatchObject({ code: "HND_HOST_CRASHED" });
    await expect(client.request("call", null, { timeoutMs: 5000 })).rejects.toMatchObject({
      code: "HND_HOST_CRASHED",
    });
  });
});
