/**
 * A host that writes garbage or lies in well-formed frames cannot hurt the
 * supervisor: bad frames are rejected, logged and counted, a stream without
 * framing gets its process killed, and the agent keeps answering.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { metrics } from "../../core/metrics.ts";
import { disposeAgent, makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";
import { hostTestRegistry } from "./handlers.ts";

const ROGUE = join(import.meta.dir, "rogue-host.ts");

let vendor: Vendor | undefined;
let t: TestAgent | undefined;
afterEach(async () => {
  await disposeAgent(t);
  vendor?.cleanup();
  t = undefined;
});

async function rogue(mode: string): Promise<TestAgent> {
  vendor = await makeVendor();
  await vendor.release("Crashy", 1, { "data.txt": "fine" });
  t = await startAgent(vendor, {
    registry: hostTestRegistry,
    config: { hosts: { maxMessageBytes: 64 * 1024, restartBackoffMs: 10, heartbeatSeconds: 0 } },
    hosts: { command: () => [process.execPath, ROGUE, mode] },
  });
  return t;
}

const counted = (kind: string) =>
  Number(
    new RegExp(`outpost_ipc_protocol_errors_total\\{group="crashy",kind="${kind}"\\} (\\d+)`).exec(
      metrics.render(),
    )?.[1] ?? 0,
  );

describe("a host that breaks the protocol", () => {
  test("garbage on stdout: the stream is dropped, the process killed, the agent unharmed", async () => {
    const before = counted("bad-magic");
    const { agent } = await rogue("garbage");
    const r = await agent.update();
    expect(r.ok).toBe(false);
    expect(r.rejected[0]?.code).toBe("HND_HOST_CRASHED");
    expect(r.rejected[0]?.reason).toContain("bad-magic");
    expect(counted("bad-magic")).toBe(before + 1);
    const crash = agent.events.recent((e) => e.type === "host-crashed")[0];
    expect(crash).toMatchObject({ group: "crashy", reason: "protocol", signal: "SIGKILL" });
    // The supervisor still answers, and says what happened.
    const status = agent.status();
    expect(status.hosts?.[0]?.lastCrash?.reason).toBe("protocol");
    expect(status.content[0]?.type).toBe("Crashy");
  }, 20_000);

  test("well-framed lies: unknown ids, oversized frames, malformed and forged messages are rejected", async () => {
    const before = {
      unknown: counted("unknown-id"),
      oversize: counted("oversize"),
      bad: counted("bad-message"),
      forged: counted("reserved-event"),
    };
    const { agent } = await rogue("liar");
    const r = await agent.update();
    // The init answer had the wrong shape: refused, the host killed, the content not loaded.
    expect(r.rejected[0]?.code).toBe("HND_IPC_PROTOCOL");
    expect(counted("unknown-id")).toBeGreaterThan(before.unknown);
    expect(counted("oversize")).toBeGreaterThan(before.oversize);
    expect(counted("bad-message")).toBeGreaterThan(before.bad);
    expect(counted("reserved-event")).toBeGreaterThan(before.forged);
    // A forged "alert" never reached the agent's event stream.
    expect(agent.events.recent((e) => e.type === "alert" && JSON.stringify(e).includes("forged"))).toEqual(
      [],
    );
    expect(agent.status().content[0]?.handlerState).not.toBe("loaded");
  }, 20_000);
});
