import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../../core/config.ts";
import { generateVendorKeys } from "../samples/envelope.ts";
import { createScanRuntime } from "./runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-scan-runtime-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const call = async () => {
  throw new Error("not called");
};

test("policy: samples require lookups, a sample URL and the vendor key", () => {
  expect(() => parseConfig({ liveProtection: { samples: true } })).toThrow(
    /liveProtection\.samples: sample submission requires lookups/,
  );
  expect(() => parseConfig({ liveProtection: { lookups: true, samples: true } })).toThrow(
    /needs sampleUrl and vendorKey/,
  );
  expect(() => parseConfig({ liveProtection: { zone: "not a zone" } })).toThrow(/liveProtection\.zone/);
  const defaults = parseConfig({});
  expect(defaults.liveProtection).toMatchObject({ lookups: false, samples: false });
  expect(defaults.reputation).toEqual({ processTagging: true, pollIntervalMs: 250 });
});

test("the runtime has exactly the parts the policy switches on", async () => {
  const off = await createScanRuntime(
    { config: parseConfig({ stateDir: dir }), api: { call } },
    { background: true },
  );
  expect([!!off.sxl, !!off.queue, !!off.uploader, !!off.tagger]).toEqual([false, false, false, true]);

  const keys = await generateVendorKeys();
  writeFileSync(join(dir, "pub.pem"), keys.publicPem);
  const config = parseConfig({
    stateDir: dir,
    liveProtection: {
      lookups: true,
      samples: true,
      resolver: "127.0.0.1:5353",
      sampleUrl: "http://127.0.0.1:1/v1/samples",
      vendorKey: join(dir, "pub.pem"),
    },
    reputation: { processTagging: false },
  });
  const on = await createScanRuntime({ config, api: { call } }, { background: true });
  expect([!!on.sxl, !!on.queue, !!on.uploader, !!on.tagger]).toEqual([true, true, true, false]);
  // The CLI's in-process scans queue samples but leave sending to the agent.
  const cli = await createScanRuntime({ config, api: { call } }, { background: false });
  expect([!!cli.queue, !!cli.uploader]).toEqual([true, false]);
  on.sxl?.close();
  cli.sxl?.close();

  writeFileSync(join(dir, "bad.pem"), "not a key");
  await expect(
    createScanRuntime(
      {
        config: { ...config, liveProtection: { ...config.liveProtection, vendorKey: join(dir, "bad.pem") } },
        api: { call },
      },
      { background: false },
    ),
  ).rejects.toMatchObject({ code: "SMP_BAD_KEY" });
});
