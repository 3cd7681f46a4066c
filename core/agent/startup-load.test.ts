/**
 * Start-up asks the host to start every process that gets content before
 * it loads the first type (loadInstalledContent → HandlerHost.prestart):
 * the hosts boot side by side while content is read, instead of one after
 * another as the types load in order.
 */
import { describe, expect, test } from "bun:test";
import { StoreError } from "../errors.ts";
import type { HandlerHost } from "../handler/host-contract.ts";
import { log } from "../log.ts";
import type { ContentStore } from "../store/store.ts";
import type { RollbackNotices } from "./rollback-notices.ts";
import { loadInstalledContent, type StartupLoadDeps } from "./startup-load.ts";

function record(type: string) {
  return {
    type,
    version: 1,
    dir: "versions/1-0000000000000000",
    signingTime: "2026-01-01T00:00:00.000Z",
    installedAt: "2026-01-01T00:00:00.000Z",
  };
}

/** A read-only start's dependencies around the given store and host; nothing else is used. */
function deps(store: ContentStore, host: HandlerHost): StartupLoadDeps {
  return {
    store,
    host,
    log,
    readOnly: true,
    now: () => new Date(),
    rollbackNotices: {} as RollbackNotices,
    emit() {},
    recordError() {},
    alert() {},
  };
}

test("every type with installed content has its host started before the first one loads", async () => {
  const calls: string[] = [];
  const store = {
    installed: (type: string) => {
      calls.push(`installed ${type}`);
      if (type === "Broken") throw new StoreError("STORE_CORRUPT_POINTER", "current.json: bad JSON");
      return type === "Absent" ? null : record(type);
    },
    verifyInstalled: (type: string) => {
      calls.push(`verify ${type}`);
      return { ok: true, problems: [] };
    },
    view: (r: { type: string }) => ({ type: r.type, version: 1, signingTime: "", files: [] }),
  } as unknown as ContentStore;
  const host = {
    prestart: (types: readonly string[]) => calls.push(`prestart ${types.join(",")}`),
    validate: async (type: string) => {
      calls.push(`validate ${type}`);
      // Stops the load here: a read-only start marks it failed and goes on to the next type.
      throw new Error("stop");
    },
    markFailed: (type: string) => calls.push(`failed ${type}`),
  } as unknown as HandlerHost;
  await loadInstalledContent(["Alpha", "Absent", "Broken", "Beta"], deps(store, host));
  expect(calls).toEqual([
    "installed Alpha",
    "installed Absent",
    "installed Broken",
    "installed Beta",
    // Not Absent (nothing installed) nor Broken (its pointer is unreadable: its last-known-good may not even load).
    "prestart Alpha,Beta",
    "verify Alpha",
    "validate Alpha",
    "failed Alpha",
    "failed Broken",
    "verify Beta",
    "validate Beta",
    "failed Beta",
  ]);
});

describe("without processes", () => {
  test("a host with no prestart (in-process isolation) loads as before", async () => {
    const validated: string[] = [];
    const store = {
      installed: (type: string) => record(type),
      verifyInstalled: () => ({ ok: true, problems: [] }),
      view: (r: { type: string }) => ({ type: r.type, version: 1, signingTime: "", files: [] }),
    } as unknown as ContentStore;
    const host = {
      validate: async (type: string) => {
        validated.push(type);
        throw new Error("stop");
      },
      markFailed() {},
    } as unknown as HandlerHost;
    await loadInstalledContent(["Alpha"], deps(store, host));
    expect(validated).toEqual(["Alpha"]);
  });
});
