import { describe, expect, test } from "bun:test";
import { EventBus } from "./events.ts";

describe("EventBus ids and resume", () => {
  test("ids strictly increase from firstId and reach subscribers with the event", () => {
    const bus = new EventBus(10, { firstId: 100 });
    const seen: [string, number][] = [];
    bus.subscribe((e, id) => seen.push([e.type, id]));
    bus.emit("a");
    bus.emit("b");
    expect(seen).toEqual([
      ["a", 100],
      ["b", 101],
    ]);
    expect(bus.lastId).toBe(101);
  });

  test("default numbering starts at the creation time in microseconds, so a new bus outnumbers an old one", () => {
    const before = Date.now() * 1000;
    const old = new EventBus();
    old.emit("x");
    const fresh = new EventBus();
    expect(old.lastId).toBeGreaterThanOrEqual(before);
    expect(fresh.lastId + 1).toBeGreaterThanOrEqual(old.lastId);
    expect(Number.isSafeInteger(fresh.lastId + 1_000_000)).toBe(true);
  });

  test("since: resume inside the ring is complete; older or foreign ids are flagged", () => {
    const bus = new EventBus(3, { firstId: 1 });
    for (const t of ["a", "b", "c", "d", "e"]) bus.emit(t); // ids 1..5, ring holds 3..5
    const types = (r: ReturnType<EventBus["since"]>) => r.events.map((s) => `${s.id}:${s.event.type}`);

    expect(types(bus.since(undefined))).toEqual(["3:c", "4:d", "5:e"]);
    expect(bus.since(undefined).complete).toBe(true);
    expect(types(bus.since(3))).toEqual(["4:d", "5:e"]);
    expect(bus.since(2)).toMatchObject({ complete: true });
    expect(types(bus.since(2))).toEqual(["3:c", "4:d", "5:e"]);
    expect(bus.since(5)).toEqual({ events: [], complete: true });

    // Event 2 fell out of the ring, so resuming after 1 would silently miss it.
    expect(bus.since(1).complete).toBe(false);
    expect(types(bus.since(1))).toEqual(["3:c", "4:d", "5:e"]);
    // An id this bus never issued (a previous agent process, or made up).
    expect(bus.since(99).complete).toBe(false);
  });

  test("since on an empty bus: only its own 'nothing yet' id is complete", () => {
    const bus = new EventBus(3, { firstId: 10 });
    expect(bus.since(9)).toEqual({ events: [], complete: true });
    expect(bus.since(5).complete).toBe(false);
  });

  test("subscriberCount follows subscribe/unsubscribe; a throwing subscriber is isolated", () => {
    const bus = new EventBus();
    const off = bus.subscribe(() => {
      throw new Error("broken");
    });
    const got: string[] = [];
    const off2 = bus.subscribe((e) => got.push(e.type));
    expect(bus.subscriberCount).toBe(2);
    bus.emit("x");
    expect(got).toEqual(["x"]);
    off();
    off2();
    expect(bus.subscriberCount).toBe(0);
    expect(bus.recent().map((e) => e.type)).toEqual(["x"]);
  });
});
