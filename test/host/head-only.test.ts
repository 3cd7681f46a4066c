/**
 * `headOnly` payload files (core/handler/contract.ts, core/host/head-only.ts), end to end through
 * the update client and the store, in both isolation modes: the handler gets the declared head and
 * the file's size, `read` and a longer head are refused with HND_HEAD_ONLY, and — in a host process
 * — only the head is sent (outpost_host_staged_bytes_total), through the group's transfer region.
 * The file is still checked whole: a byte changed past the head on disk is caught at the next start.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentConfigInput } from "../../core/config.ts";
import { stagedBytes } from "../../core/host/host-metrics.ts";
import { disposeAgent, makeVendor, startAgent, type TestAgent, type Vendor } from "../fixtures/vendor.ts";
import { HEADED_HEAD_BYTES, hostTestRegistry } from "./handlers.ts";

// A host process start and a 4 MiB package signed and verified: more than the default when loaded.
setDefaultTimeout(60_000);

/** 4 MiB that differ everywhere (a head read by mistake from the wrong offset would show). */
const BIG = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 131 + (i >> 8)) & 0xff);
const ABOUT = "a file read whole";

let vendor: Vendor | undefined;
let t: TestAgent | undefined;
afterEach(async () => {
  await disposeAgent(t);
  vendor?.cleanup();
  t = undefined;
  vendor = undefined;
});

async function installed(isolation: "process" | "in-process"): Promise<TestAgent> {
  vendor = await makeVendor();
  await vendor.release("Headed", 1, { "big.bin": BIG, "about.txt": ABOUT });
  const config: AgentConfigInput = { hosts: { isolation, restartBackoffMs: 10 } };
  t = await startAgent(vendor, { registry: hostTestRegistry, config });
  const r = await t.agent.update();
  expect(r.rejected).toEqual([]);
  expect(r.installed).toEqual([{ type: "Headed", version: 1, previousVersion: null }]);
  return t;
}

function storedBig(t: TestAgent): string {
  const versions = join(t.stateDir, "content", "Headed", "versions");
  const [dir] = readdirSync(versions).filter((d) => d.startsWith("1-"));
  return join(versions, dir!, "payload", "big.bin");
}

for (const isolation of ["process", "in-process"] as const) {
  describe(`headOnly files (${isolation})`, () => {
    test("the handler sees the head and the size; read and a longer head are HND_HEAD_ONLY", async () => {
      const before = stagedBytes.get({ group: "echo" });
      const { agent } = await installed(isolation);
      expect(await agent.call("Headed", "seen", {})).toMatchObject({
        version: 1,
        head: Buffer.from(BIG.subarray(0, HEADED_HEAD_BYTES)).toString("hex"),
        size: BIG.byteLength,
        about: ABOUT,
        read: "HND_HEAD_ONLY",
        readText: "HND_HEAD_ONLY",
        longerHead: "HND_HEAD_ONLY",
        // The same answer from the host's staged view and the store's (which would throw a RangeError).
        negativeHead: "HND_BAD_ARGS",
      });
      if (isolation === "process") {
        // Validate and load of the candidate staged it once: the head and about.txt, not 4 MiB.
        const sent = stagedBytes.get({ group: "echo" }) - before;
        expect(sent).toBeGreaterThan(0);
        expect(sent).toBeLessThanOrEqual(2 * (HEADED_HEAD_BYTES + ABOUT.length));
        // Both went through the group's transfer region (core/host/content-loader.ts), one after the
        // other at the same offset: the head above is intact only because the host keeps a copy.
        const region = agent.transfer("Headed")!;
        expect(region.counters.leases).toBeGreaterThanOrEqual(2);
        expect(region.available).toBe(region.size);
      }
    });

    test("a byte changed past the head is still caught at the next start (STORE_CONTENT_CORRUPT)", async () => {
      const t = await installed(isolation);
      const file = storedBig(t);
      const damaged = Buffer.from(readFileSync(file));
      damaged[damaged.length - 1] = damaged[damaged.length - 1]! ^ 0x01;
      writeFileSync(file, damaged);
      await t.restart();
      // No last-known-good to fall back to: the type is shown failed, naming the file and the reason.
      const info = t.agent.content().find((c) => c.type === "Headed");
      expect(info?.handlerState).toBe("failed");
      expect(info?.badVersions).toContain(1);
      expect(info?.handlerError).toMatchObject({ code: "STORE_CONTENT_CORRUPT", file: "big.bin" });
      expect(info?.handlerError?.message).toContain("SHA-384 does not match the manifest");
    });
  });
}
