import { describe, expect, test } from "bun:test";
import { HandlerError } from "../../core/errors.ts";
import { HandlerManifestSchema } from "../../core/handler/contract.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import hmpaDataHandler, { MAX_CHECK_MANY } from "./index.ts";
import { contentView, recordingCaps, reseal, syntheticThumbprints } from "./testutil.ts";
import { buildAllowlist } from "./writer.ts";

const registry = new HandlerRegistry().register(hmpaDataHandler);
const handler = registry.require("Hmpa_data");
const ALLOWLIST = buildAllowlist([
  "StackPivot:0a1b2c3d",
  "HeapSpray:ffee",
  ...syntheticThumbprints("IAF", 0, 200),
]);

async function thrown(f: () => unknown): Promise<HandlerError> {
  try {
    await f();
  } catch (e) {
    if (e instanceof HandlerError) return e;
    throw e;
  }
  throw new Error("expected a HandlerError");
}

async function loaded() {
  const content = contentView({ "allowlist.bin": ALLOWLIST });
  await handler.validate(content);
  return handler.load(content, recordingCaps().caps);
}

describe("manifest", () => {
  test("declares no privileges and modest limits", () => {
    const m = handler.manifest;
    expect(HandlerManifestSchema.parse(m)).toEqual(m);
    expect(m.name).toBe("Hmpa_data");
    expect(m.group).toBe("hmpa");
    expect(m.privileges).toEqual({
      runAs: "agent",
      fs: { mode: "none" },
      net: "none",
      exec: false,
      agent: false,
      hostView: false,
    });
    expect(m.limits.memoryMb).toBeLessThanOrEqual(512);
    expect(m.maxPackageBytes).toBeLessThanOrEqual(256 * 1024 * 1024);
  });
});

describe("validate", () => {
  test("accepts a good allowlist, ignoring other payload files", async () => {
    await handler.validate(contentView({ "allowlist.bin": ALLOWLIST, "README.txt": new Uint8Array(3) }));
  });

  test("rejects a missing allowlist.bin", async () => {
    const e = await thrown(() => handler.validate(contentView({ "allowlist.txt": new Uint8Array(1) }, 7)));
    expect(e.code).toBe("HND_HMPA_INVALID");
    expect(e.file).toBe("allowlist.bin");
    expect(e.details?.reason).toBe("missing-file");
    expect(e.message).toContain("Hmpa_data v7");
  });

  test("rejects corrupt files with HND_HMPA_INVALID naming the file and reason", async () => {
    const cases: [Uint8Array, string][] = [
      [ALLOWLIST.subarray(0, ALLOWLIST.length - 2), "truncated"],
      [reseal(Object.assign(ALLOWLIST.slice(), { 2: 0 })), "bad-magic"],
      [Object.assign(ALLOWLIST.slice(), { 100: ALLOWLIST[100]! ^ 4 }), "checksum-mismatch"],
    ];
    for (const [bytes, reason] of cases) {
      const e = await thrown(() => handler.validate(contentView({ "allowlist.bin": bytes })));
      expect(e.code).toBe("HND_HMPA_INVALID");
      expect(e.file).toBe("allowlist.bin");
      expect(e.details?.reason).toBe(reason);
    }
  });
});

describe("load, status, unload", () => {
  test("load maps the file and logs; status reports entries, bytes, bytes/entry, load time", async () => {
    const content = contentView({ "allowlist.bin": ALLOWLIST }, 3);
    const { caps, records } = recordingCaps();
    await handler.validate(content);
    const live = await handler.load(content, caps);
    const status = handler.status!(live);
    expect(status).toMatchObject({ entries: 202, bytes: ALLOWLIST.length });
    expect(status.bytesPerEntry).toBeCloseTo(ALLOWLIST.length / 202, 2);
    expect(typeof status.loadMs).toBe("number");
    expect(status.loadMs as number).toBeGreaterThanOrEqual(0);
    expect(JSON.parse(JSON.stringify(status))).toEqual(status);
    expect(records).toContainEqual(expect.objectContaining({ level: "info", msg: "hmpa allowlist loaded" }));
    expect(handler.unload).toBeUndefined(); // nothing to release beyond the bytes the GC owns
  });
});

describe("call", () => {
  test("check answers allowed/not allowed, echoing the thumbprint as given", async () => {
    const live = await loaded();
    expect(await handler.call!(live, "check", { thumbprint: "StackPivot:0A1B2C3D" })).toEqual({
      thumbprint: "StackPivot:0A1B2C3D",
      allowed: true,
    });
    expect(await handler.call!(live, "check", { thumbprint: "StackPivot:0a1b2c3e" })).toEqual({
      thumbprint: "StackPivot:0a1b2c3e",
      allowed: false,
    });
  });

  test("checkMany answers each thumbprint in order", async () => {
    const live = await loaded();
    const result = await handler.call!(live, "checkMany", {
      thumbprints: ["HeapSpray:FFEE", "HeapSpray:ffef", "IAF:0000000000000007"],
    });
    expect(result).toEqual([
      { thumbprint: "HeapSpray:FFEE", allowed: true },
      { thumbprint: "HeapSpray:ffef", allowed: false },
      { thumbprint: "IAF:0000000000000007", allowed: true },
    ]);
  });

  test("rejects malformed arguments and unknown methods", async () => {
    const live = await loaded();
    for (const args of [
      undefined,
      {},
      { thumbprint: "" },
      { thumbprint: 42 },
      { thumbprint: "a", extra: 1 },
      { thumbprint: "x".repeat(20_000) },
    ]) {
      expect((await thrown(() => handler.call!(live, "check", args))).code).toBe("HND_HMPA_BAD_ARGS");
    }
    const tooMany = { thumbprints: Array.from({ length: MAX_CHECK_MANY + 1 }, () => "a") };
    expect((await thrown(() => handler.call!(live, "checkMany", tooMany))).code).toBe("HND_HMPA_BAD_ARGS");
    expect((await thrown(() => handler.call!(live, "checkMany", { thumbprints: "a" }))).code).toBe(
      "HND_HMPA_BAD_ARGS",
    );
    const unknown = await thrown(() => handler.call!(live, "add", { thumbprint: "a" }));
    expect(unknown.code).toBe("HND_UNKNOWN_METHOD");
  });
});
