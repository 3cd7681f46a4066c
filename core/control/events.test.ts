/**
 * GET /v1/events over real HTTP (TCP and the unix socket) with a real
 * EventBus: replay, live events, Last-Event-ID resume and gaps,
 * keep-alives, limits, and that every way a stream ends releases its
 * subscription.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { EventBus } from "../agent/events.ts";
import { metrics } from "../metrics.ts";
import { ControlClient, type EventStreamItem, readSse } from "./client.ts";
import type { EventStreamOptions } from "./routes/events.ts";
import { type ControlPlane, createControlApp, startControlPlane } from "./server.ts";

const TOKEN = "e".repeat(64);

let stateDir: string;
let bus: EventBus;
let plane: ControlPlane | undefined;
let client: ControlClient;
/** Subscriptions the control plane holds besides streams (the status cache's). */
let baseline = 0;
const streamSubscribers = () => bus.subscriberCount - baseline;

async function start(eventStreams: EventStreamOptions = {}) {
  plane = await startControlPlane({ api: new FakeAgentApi(), stateDir, events: bus, eventStreams });
  client = await ControlClient.fromStateDir(stateDir);
  baseline = bus.subscriberCount;
}

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-sse-"));
  bus = new EventBus(5, { firstId: 1000 });
});
afterEach(async () => {
  await plane?.stop();
  plane = undefined;
  rmSync(stateDir, { recursive: true, force: true });
});

/** Waits for a condition the server reaches asynchronously (a disconnect noticed), with a deadline. */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

async function take(it: AsyncIterator<EventStreamItem>, n: number): Promise<EventStreamItem[]> {
  const out: EventStreamItem[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

const ids = (items: EventStreamItem[]) => items.map((i) => (i.kind === "event" ? i.id : `gap`));
const streamsGauge = () => /^outpost_control_event_streams (\d+)$/m.exec(metrics.render())?.[1];

describe("replay and live events", () => {
  test("held events first, then live ones, each with its bus id; stop releases the subscription", async () => {
    await start();
    bus.emit("update-started", { group: "public-1" });
    bus.emit("content-installed", { contentType: "Hmpa_data", version: 3 });
    const abort = new AbortController();
    const it = client.events({ signal: abort.signal })[Symbol.asyncIterator]();
    const first = await take(it, 2);
    expect(first).toEqual([
      {
        kind: "event",
        id: 1000,
        event: expect.objectContaining({ type: "update-started", group: "public-1" }),
      },
      { kind: "event", id: 1001, event: expect.objectContaining({ type: "content-installed", version: 3 }) },
    ]);
    expect(streamSubscribers()).toBe(1);
    bus.emit("update-rejected", { code: "SIG_EXPIRED" });
    const [live] = await take(it, 1);
    expect(live).toMatchObject({
      kind: "event",
      id: 1002,
      event: { type: "update-rejected", code: "SIG_EXPIRED" },
    });

    abort.abort();
    expect((await it.next()).done).toBe(true);
    await until(() => streamSubscribers() === 0, "the server to unsubscribe");
    expect(streamsGauge()).toBe("0");
  });

  test("follow=false ends after the backlog; tail limits it", async () => {
    await start();
    for (const t of ["a", "b", "c"]) bus.emit(t);
    const all: EventStreamItem[] = [];
    for await (const item of client.events({ follow: false })) all.push(item);
    expect(ids(all)).toEqual([1000, 1001, 1002]);
    const tail: EventStreamItem[] = [];
    for await (const item of client.events({ follow: false, tail: 1 })) tail.push(item);
    expect(ids(tail)).toEqual([1002]);
    expect(streamSubscribers()).toBe(0);
  });

  test("the wire format: retry, id and data lines; JSON data is the event exactly", async () => {
    await start();
    const event = bus.emit("alert", { alert: { kind: "update-rejected", reason: "line1\nline2" } });
    const res = await fetch(`${plane!.url}/v1/events?follow=false`, {
      headers: { authorization: `Bearer ${plane!.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("cache-control")).toContain("no-cache");
    const text = await res.text();
    expect(text).toBe(`retry: 3000\n\nid: 1000\ndata: ${JSON.stringify(event)}\n\n`);
  });
});

describe("Last-Event-ID", () => {
  test("resuming inside the ring continues exactly after the id", async () => {
    await start();
    for (const t of ["a", "b", "c", "d"]) bus.emit(t);
    const got: EventStreamItem[] = [];
    for await (const item of client.events({ follow: false, lastEventId: 1001 })) got.push(item);
    expect(ids(got)).toEqual([1002, 1003]);
  });

  test("the raw header works (what EventSource sends on reconnect)", async () => {
    await start();
    for (const t of ["a", "b"]) bus.emit(t);
    const res = await fetch(`${plane!.url}/v1/events?follow=false`, {
      headers: { authorization: `Bearer ${plane!.token}`, "last-event-id": "1000" },
    });
    const messages = [];
    for await (const m of readSse(res.body!)) messages.push(m);
    expect(messages.map((m) => m.id).filter(Boolean)).toEqual(["1001"]);
  });

  test("an id older than the ring gets a gap, then everything held", async () => {
    await start();
    for (let i = 0; i < 8; i++) bus.emit(`e${i}`); // ring of 5 holds 1003..1007
    const got: EventStreamItem[] = [];
    for await (const item of client.events({ follow: false, lastEventId: 1001 })) got.push(item);
    expect(got[0]).toEqual({ kind: "gap", lastEventId: 1001, oldestAvailable: 1003 });
    expect(ids(got.slice(1))).toEqual([1003, 1004, 1005, 1006, 1007]);
  });

  test("an id from another agent process gets a gap too", async () => {
    await start();
    bus.emit("a");
    const got: EventStreamItem[] = [];
    for await (const item of client.events({ follow: false, lastEventId: 999_999 })) got.push(item);
    expect(got[0]).toMatchObject({ kind: "gap", lastEventId: 999_999 });
    expect(ids(got.slice(1))).toEqual([1000]);
  });

  test("a malformed Last-Event-ID is a 400 with the usual error body", async () => {
    await start();
    const res = await fetch(`${plane!.url}/v1/events`, {
      headers: { authorization: `Bearer ${plane!.token}`, "last-event-id": "abc" },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("CTL_BAD_REQUEST");
    expect(streamSubscribers()).toBe(0);
  });
});

describe("connection lifecycle", () => {
  test("keep-alive comments on a quiet stream", async () => {
    await start({ keepAliveMs: 10 });
    const res = await fetch(`${plane!.url}/v1/events`, {
      headers: { authorization: `Bearer ${plane!.token}` },
    });
    const it = readSse(res.body!)[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ retry: 3000 });
    expect((await it.next()).value).toEqual({ comment: "keep-alive" });
    await it.return?.(undefined);
    await until(() => streamSubscribers() === 0, "the server to unsubscribe");
  });

  test("a client that disconnects leaks no subscriber (TCP and unix socket)", async () => {
    await start();
    for (const via of ["tcp", "unix"] as const) {
      const abort = new AbortController();
      const res = await fetch(via === "tcp" ? `${plane!.url}/v1/events` : "http://localhost/v1/events", {
        headers: { authorization: `Bearer ${plane!.token}` },
        signal: abort.signal,
        ...(via === "unix" ? { unix: plane!.socket } : {}),
      });
      const reader = res.body!.getReader();
      await reader.read(); // the retry preamble: the stream is established
      expect(streamSubscribers()).toBe(1);
      abort.abort();
      await until(() => streamSubscribers() === 0, `the server to notice the ${via} disconnect`);
      // Events emitted after the disconnect go nowhere and break nothing.
      bus.emit("after-disconnect");
    }
    expect(streamsGauge()).toBe("0");
  });

  test("stopping the control plane ends open streams and releases them", async () => {
    await start();
    const it = client.events()[Symbol.asyncIterator]();
    bus.emit("a");
    await take(it, 1);
    expect(streamSubscribers()).toBe(1);
    await plane!.stop();
    plane = undefined;
    // Everything is released, the status cache's subscription included.
    expect(bus.subscriberCount).toBe(0);
    expect((await it.next().catch(() => ({ done: true }))).done).toBe(true);
  });

  test("streams are capped: one more is 503 CTL_TOO_MANY_STREAMS", async () => {
    await start({ maxStreams: 2 });
    const aborts = [new AbortController(), new AbortController()];
    for (const a of aborts) {
      const it = client.events({ signal: a.signal })[Symbol.asyncIterator]();
      bus.emit("tick");
      await take(it, 1);
    }
    const refused = await fetch(`${plane!.url}/v1/events`, {
      headers: { authorization: `Bearer ${plane!.token}` },
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("CTL_TOO_MANY_STREAMS");
    for (const a of aborts) a.abort();
    await until(() => streamSubscribers() === 0, "both streams to close");
    const again = await fetch(`${plane!.url}/v1/events?follow=false`, {
      headers: { authorization: `Bearer ${plane!.token}` },
    });
    expect(again.status).toBe(200);
    await again.text();
  });
});

describe("in-process", () => {
  test("a reader that stops reading is cut off once its backlog passes the bound", async () => {
    const app = createControlApp(new FakeAgentApi(), {
      token: TOKEN,
      events: bus,
      eventStreams: { maxQueued: 5 },
    });
    baseline = bus.subscriberCount;
    const res = await app.request("http://localhost/v1/events", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect(streamSubscribers()).toBe(1);
    for (let i = 0; i < 10; i++) bus.emit("flood", { i });
    expect(streamSubscribers()).toBe(0);
    // What was queued before the cut is still delivered, and the stream then ends.
    const messages = [];
    for await (const m of readSse(res.body!)) messages.push(m);
    expect(messages.length).toBeGreaterThan(0);
    expect(messages.length).toBeLessThan(11);
  });

  test("without an event source the route exists but answers 503 CTL_NOT_AVAILABLE", async () => {
    const app = createControlApp(new FakeAgentApi(), { token: TOKEN });
    const res = await app.request("http://localhost/v1/events", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("CTL_NOT_AVAILABLE");
  });
});
