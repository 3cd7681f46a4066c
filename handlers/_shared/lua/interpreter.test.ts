import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  interpreterCounters,
  openEngines,
  RELEASE_AFTER_MS,
  releaseInterpreter,
  setReleaseDelay,
} from "./interpreter.ts";
import { LuaSandbox } from "./sandbox.ts";

async function until(what: string, probe: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!probe()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** A chunk that leaves the interpreter's memory grown: ~10 MiB of tables, then garbage. */
const GROW = "local t = {} for i = 1, 100000 do t[i] = { i, i + 1 } end return #t";

describe("the Lua interpreter of a process (issue 21, Footprint)", () => {
  beforeAll(() => {
    // Other files' sandboxes in this process: start from none open.
    expect(openEngines()).toBe(0);
  });
  afterAll(() => {
    setReleaseDelay(RELEASE_AFTER_MS);
  });

  test("with no state open it is dropped after the delay, with the globals the glue defined", async () => {
    setReleaseDelay(30);
    const s = await LuaSandbox.create();
    // The Emscripten glue's global accessors exist while an instance does (they hold its scope).
    expect(Object.getOwnPropertyDescriptor(globalThis, "buffer")?.get).toBeDefined();
    s.runChunkRefs(GROW, "=grow", []);
    const released = interpreterCounters.released;
    s.close();
    expect(openEngines()).toBe(0);
    await until("the release", () => interpreterCounters.released === released + 1);
    expect(Object.getOwnPropertyDescriptor(globalThis, "buffer")).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(globalThis, "asm")).toBeUndefined();
  });

  test("a released interpreter is built again for the next state, which runs", async () => {
    setReleaseDelay(60_000);
    releaseInterpreter();
    const built = interpreterCounters.built;
    const s = await LuaSandbox.create();
    expect(interpreterCounters.built).toBe(built + 1);
    expect(s.runChunkRefs("return 1", "=one", []).length).toBe(1);
    s.close();
  });

  test("a state opened within the delay reuses it; an open state keeps it", async () => {
    setReleaseDelay(60_000);
    const a = await LuaSandbox.create();
    const { built, released } = interpreterCounters;
    a.close();
    const b = await LuaSandbox.create();
    const c = await LuaSandbox.create();
    expect(interpreterCounters.built).toBe(built);
    b.close();
    expect(openEngines()).toBe(1);
    expect(releaseInterpreter()).toBe(false);
    c.close();
    expect(releaseInterpreter()).toBe(true);
    expect(interpreterCounters.released).toBe(released + 1);
  });
});
