import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { statePaths } from "../config.ts";
import { HandlerError, OutpostError, SignatureError, StoreError } from "../errors.ts";
import { ControlClient } from "./client.ts";
import { ControlError } from "./errors.ts";
import { type ControlPlane, startControlPlane } from "./server.ts";

let stateDir: string;
let api: FakeAgentApi;
let plane: ControlPlane | undefined;

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-client-"));
  api = new FakeAgentApi();
});
afterEach(async () => {
  await plane?.stop();
  plane = undefined;
  rmSync(stateDir, { recursive: true, force: true });
});

async function notRunning(promise: Promise<unknown>, reason: RegExp) {
  const err = (await promise.catch((e) => e)) as OutpostError;
  expect(err).toBeInstanceOf(ControlError);
  expect(err.code).toBe("CTL_NOT_RUNNING");
  expect(err.message).toMatch(reason);
}

describe("fromStateDir", () => {
  test("no control.json → CTL_NOT_RUNNING", async () => {
    await notRunning(ControlClient.fromStateDir(stateDir), /control\.json not found/);
  });

  test("malformed control.json → CTL_NOT_RUNNING", async () => {
    writeFileSync(statePaths(stateDir).controlInfo, "{not json");
    await notRunning(ControlClient.fromStateDir(stateDir), /malformed/);
  });

  test("dead pid → CTL_NOT_RUNNING without touching the network", async () => {
    const child = Bun.spawnSync(["true"]);
    const info = { url: "http://127.0.0.1:9", port: 9, pid: child.pid, startedAt: new Date().toISOString() };
    writeFileSync(statePaths(stateDir).controlInfo, JSON.stringify(info));
    await notRunning(ControlClient.fromStateDir(stateDir), new RegExp(`pid ${child.pid} .* not running`));
  });

  test("stopped agent (advertisement left behind, port closed) → CTL_NOT_RUNNING", async () => {
    plane = await startControlPlane({ api, stateDir });
    const paths = statePaths(stateDir);
    const info = await Bun.file(paths.controlInfo).text();
    await plane.stop();
    plane = undefined;
    // Simulates a crash: the files survive, nothing listens.
    writeFileSync(paths.controlInfo, info);
    writeFileSync(paths.controlToken, "0".repeat(64));
    await notRunning(ControlClient.fromStateDir(stateDir), /did not answer/);
  });

  test("prefers the unix socket, falls back to TCP when it is gone", async () => {
    plane = await startControlPlane({ api, stateDir });
    const viaSocket = await ControlClient.fromStateDir(stateDir);
    expect(viaSocket.socket).toBe(statePaths(stateDir).controlSocket);
    expect((await viaSocket.content())[0]?.type).toBe("Hmpa_data");

    rmSync(statePaths(stateDir).controlSocket);
    const viaTcp = await ControlClient.fromStateDir(stateDir);
    expect(viaTcp.socket).toBeUndefined();
    expect(viaTcp.url).toBe(plane.url);
    expect((await viaTcp.status()).health).toBe("green");
  });
});

describe("methods mirror the routes", () => {
  let client: ControlClient;
  beforeEach(async () => {
    plane = await startControlPlane({ api, stateDir });
    client = await ControlClient.fromStateDir(stateDir);
  });

  test("status, content, update, rollback, call", async () => {
    expect(await client.status()).toEqual(JSON.parse(JSON.stringify(api.status())));
    expect(await client.content()).toEqual(api.items);
    expect(await client.update()).toEqual(api.report);
    expect((await client.rollback("Hmpa_data")).version).toBe(2);
    expect(await client.call("Hmpa_data", "check", { sha256: "00" })).toEqual({
      echo: { type: "Hmpa_data", method: "check", args: { sha256: "00" } },
    });
    expect(await client.call("Hmpa_data", "info", undefined)).toEqual({
      echo: { type: "Hmpa_data", method: "info", args: null },
    });
    expect(api.calls.map((c) => c.op)).toEqual([
      "status",
      "status",
      "content",
      "update",
      "rollback",
      "call",
      "call",
    ]);
  });

  test("server errors come back with the thrower's code, class and file", async () => {
    api.failNext.set(
      "update",
      new SignatureError("SIG_UNTRUSTED", "chain does not end in a trusted root", { file: "x.p7s" }),
    );
    const sig = await client.update().catch((e) => e);
    expect(sig).toBeInstanceOf(SignatureError);
    expect(sig).toMatchObject({
      code: "SIG_UNTRUSTED",
      file: "x.p7s",
      message: "chain does not end in a trusted root",
    });

    api.items = [{ ...api.items[0]!, lkgVersion: null }];
    const store = await client.rollback("Hmpa_data").catch((e) => e);
    expect(store).toBeInstanceOf(StoreError);
    expect(store.code).toBe("STORE_NO_LKG");

    api.failNext.set("call", new HandlerError("HND_UNKNOWN_TYPE", "no handler for content type Nope"));
    const hnd = (await client.call("Nope", "x", null).catch((e) => e)) as HandlerError;
    expect(hnd).toBeInstanceOf(HandlerError);
    expect(hnd.details).toEqual({ status: 404 });

    api.failNext.set("content", new Error("disk on fire"));
    const internal = await client.content().catch((e) => e);
    expect(internal).toBeInstanceOf(OutpostError);
    expect(internal.code).toBe("INTERNAL");
  });

  test("a wrong token is CTL_UNAUTHORIZED, not a silent fallback", async () => {
    const wrong = new ControlClient({ url: plane!.url, token: "f".repeat(64) });
    const err = await wrong.status().catch((e) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect(err.code).toBe("CTL_UNAUTHORIZED");
  });
});
