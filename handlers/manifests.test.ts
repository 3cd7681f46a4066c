import { describe, expect, test } from "bun:test";
import {
  type Capabilities,
  type ContentHandler,
  type ContentView,
  HandlerManifestSchema,
  viewOverBytes,
} from "../core/handler/contract.ts";
import { defineGroup } from "../core/host/policy.ts";
import { parsedBuiltinGroups, parsedBuiltinManifests } from "./builtins.macro.ts";
import { datasetAHandler } from "./DatasetA/index.ts";
import { builtinGroups } from "./groups.ts";
import { handlerFor } from "./host-registry.ts";
import { builtinHandlers, defaultRegistry } from "./index.ts";
import { builtinManifests } from "./manifest-sources.ts";
import { deferredHandler, manifestRegistry } from "./manifests.ts";

const view = (files: Record<string, string>): ContentView => {
  const bytes = new Map(Object.entries(files).map(([k, v]) => [k, new TextEncoder().encode(v)]));
  const read = (p: string) => {
    const b = bytes.get(p);
    if (!b) throw new Error(`no ${p}`);
    return b;
  };
  return viewOverBytes({
    type: "DatasetA",
    version: 1,
    signingTime: new Date(0).toISOString(),
    files: [...bytes.keys()],
    read,
  });
};

describe("built-in manifests and groups parsed at build time (handlers/builtins.macro.ts)", () => {
  test("every built-in handler carries its own manifest, as the schema parses its source", () => {
    const sources = new Map(builtinManifests().map((m) => [m.name, m]));
    expect(sources.size).toBe(builtinHandlers().length);
    for (const h of builtinHandlers()) {
      const source = sources.get(h.manifest.name);
      expect([h.manifest.name, source !== undefined]).toEqual([h.manifest.name, true]);
      expect(h.manifest).toEqual(HandlerManifestSchema.parse(source));
    }
    expect(parsedBuiltinManifests()).toEqual(builtinManifests().map((m) => HandlerManifestSchema.parse(m)));
  });

  test("the groups are defineGroup's output, and parse again to themselves", () => {
    expect(parsedBuiltinGroups()).toEqual(builtinGroups);
    for (const g of parsedBuiltinGroups()) expect(defineGroup(g)).toEqual(g);
  });

  test("each type's parsedManifest (its handler's, at build time) is its own manifest parsed", async () => {
    for (const source of builtinManifests()) {
      const mod = (await import(`./${source.name}/manifest.ts`)) as { parsedManifest(): unknown };
      expect(mod.parsedManifest()).toEqual(HandlerManifestSchema.parse(source));
    }
    expect(datasetAHandler.manifest.name).toBe("DatasetA");
  });
});

describe("handlers by manifest (handlers/manifests.ts)", () => {
  test("the same types, groups and manifests as the eager registry", () => {
    const eager = defaultRegistry();
    const deferred = manifestRegistry();
    expect(deferred.types()).toEqual(eager.types());
    expect(deferred.types()).toHaveLength(builtinHandlers().length);
    expect(deferred.groups()).toEqual(eager.groups());
    for (const type of eager.types()) {
      expect([type, deferred.require(type).manifest]).toEqual([type, eager.require(type).manifest]);
      // Built-in: the host process has them, no module specifier to send.
      expect(deferred.moduleOf(type)).toBeUndefined();
    }
  });

  test("restricted to host groups: theirs, plus what the agent's own state is computed from", () => {
    const scanner = manifestRegistry({ groups: ["scanner"] });
    expect(scanner.types()).toEqual([
      "AgentSoftware",
      "DatasetA",
      "Flags",
      "LocalRepData",
      "MLModel",
      "RemapperRules",
    ]);
    for (const type of scanner.types()) {
      const m = scanner.require(type).manifest;
      expect([type, m.group === "scanner" || (m.contributes?.length ?? 0) > 0]).toEqual([type, true]);
    }
    // The groups themselves stay registered (the policy of each is the same table).
    expect(scanner.groups()).toEqual(defaultRegistry().groups());
    // An agent that keeps its last applied state needs no contributors.
    expect(manifestRegistry({ groups: ["scanner"], contributors: false }).types()).toEqual([
      "DatasetA",
      "LocalRepData",
      "MLModel",
    ]);
  });

  test("handlerFor imports the one handler a type names; an unknown type is refused", async () => {
    expect(await handlerFor("DatasetA")).toBe(datasetAHandler as ContentHandler);
    await expect(handlerFor("NoSuchType")).rejects.toMatchObject({ code: "HND_UNKNOWN_TYPE" });
  });

  test("validate runs the real handler: DatasetA refuses a bad signature line with its own code", async () => {
    const deferred = manifestRegistry().require("DatasetA");
    const bad = view({ "main.ndb": "Bad.Sig:0:*:zz-not-hex\n" });
    let real: unknown;
    try {
      await datasetAHandler.validate(bad);
    } catch (e) {
      real = e;
    }
    expect(real).toBeDefined();
    await expect(Promise.resolve().then(() => deferred.validate(bad))).rejects.toMatchObject({
      code: (real as { code: string }).code,
    });
  });

  test("the code is imported once, on first use, and the optional methods are the real handler's", async () => {
    let imports = 0;
    const calls: string[] = [];
    const real: ContentHandler<{ v: number }> = {
      manifest: datasetAHandler.manifest,
      validate: () => {
        calls.push("validate");
      },
      load: (v) => ({ v: v.version }),
      status: (l) => ({ version: l.v }),
      call: (l, method) => `${method}@${l.v}`,
      unload: () => {
        calls.push("unload");
      },
    };
    const h = deferredHandler(datasetAHandler.manifest, async () => {
      imports++;
      return real as ContentHandler<unknown>;
    });
    expect(imports).toBe(0);
    // Nothing is loaded yet: the live-object methods have nothing to run on.
    expect(() => h.status!({ v: 0 })).toThrow(expect.objectContaining({ code: "HND_NOT_LOADED" }));
    expect(() => h.call!({ v: 0 }, "info", {})).toThrow(expect.objectContaining({ code: "HND_NOT_LOADED" }));
    await h.validate(view({}));
    const live = await h.load(view({}), {} as Capabilities);
    expect(imports).toBe(1);
    expect(live).toEqual({ v: 1 });
    expect(h.status!(live)).toEqual({ version: 1 });
    expect(await h.call!(live, "info", {})).toBe("info@1");
    await h.unload!(live);
    expect(calls).toEqual(["validate", "unload"]);

    // A real handler without an API: a call is refused as the host would refuse it.
    const noApi = deferredHandler(datasetAHandler.manifest, async () => ({
      manifest: datasetAHandler.manifest,
      validate: () => {},
      load: () => ({}),
    }));
    const l2 = await noApi.load(view({}), {} as Capabilities);
    expect(() => noApi.call!(l2, "info", {})).toThrow(expect.objectContaining({ code: "HND_NO_API" }));
    expect(noApi.status!(l2)).toEqual({});
  });
});
