import { describe, expect, test } from "bun:test";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import type { AgentStatus } from "../agent/api.ts";
import { EventBus } from "../agent/events.ts";
import { StatusCache } from "./status-cache.ts";

function counting() {
  const api = new FakeAgentApi();
  const statusCalls = () => api.calls.filter((c) => c.op === "status").length;
  return { api, statusCalls };
}

describe("StatusCache", () => {
  test("without an event source every request rebuilds (nothing could invalidate it)", async () => {
    const { api, statusCalls } = counting();
    const cache = new StatusCache(api);
    await cache.get();
    await cache.get();
    expect(statusCalls()).toBe(2);
  });

  test("reused until an event or maxAge; the text is JSON of status()", async () => {
    const { api, statusCalls } = counting();
    const bus = new EventBus();
    let now = 0;
    const cache = new StatusCache(api, { events: bus, maxAgeMs: 1000, now: () => now });
    const first = await cache.get();
    expect(JSON.parse(first)).toEqual(JSON.parse(JSON.stringify(api.status())));
    expect(statusCalls()).toBe(2); // one for the cache, one for the comparison above
    now = 999;
    await cache.get();
    expect(statusCalls()).toBe(2);

    api.items = [{ ...api.items[0]!, version: 4 }];
    bus.emit("content-installed", { contentType: "Hmpa_data", version: 4 });
    const afterEvent = JSON.parse(await cache.get()) as AgentStatus;
    expect(afterEvent.content[0]!.version).toBe(4);
    expect(statusCalls()).toBe(3);

    now = 999 + 1000;
    await cache.get();
    expect(statusCalls()).toBe(4);
  });

  test("concurrent misses share one build; an event during the build is not papered over", async () => {
    const bus = new EventBus();
    let release!: () => void;
    let builds = 0;
    let version = 1;
    const api = {
      status: () => {
        builds++;
        const v = version;
        return new Promise<AgentStatus>((resolve) => {
          release = () => resolve({ v } as unknown as AgentStatus);
        }) as unknown as AgentStatus;
      },
    };
    const cache = new StatusCache(api, { events: bus, maxAgeMs: 60_000 });
    const a = cache.get();
    const b = cache.get();
    expect(builds).toBe(1);
    version = 2;
    bus.emit("content-installed");
    release();
    expect(await a).toBe('{"v":1}');
    expect(await b).toBe('{"v":1}');
    // The event arrived mid-build, so that answer was not kept.
    const c = cache.get();
    expect(builds).toBe(2);
    release();
    expect(await c).toBe('{"v":2}');
  });

  test("a failing status() reaches the caller and is not cached; close() unsubscribes", async () => {
    const { api } = counting();
    const bus = new EventBus();
    const cache = new StatusCache(api, { events: bus });
    api.failNext.set("status", new Error("store unreadable"));
    await expect(cache.get()).rejects.toThrow("store unreadable");
    expect(JSON.parse(await cache.get()).health).toBe("green");
    expect(bus.subscriberCount).toBe(1);
    cache.close();
    expect(bus.subscriberCount).toBe(0);
  });
});
