/**
 * An action that takes longer than Bun's 10 s idle limit before its first
 * byte (an update cycle installing many types on a busy host) still gets its
 * answer, over the unix socket and over TCP. The fake update takes 11 s: the
 * limit itself is what is under test, so this one test has to outlast it.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { statePaths } from "../config.ts";
import { ControlClient } from "./client.ts";
import { startControlPlane } from "./server.ts";

test("a slow POST /v1/update is answered over the socket and over TCP", async () => {
  const api = new FakeAgentApi();
  const report = await api.update();
  api.update = async () => {
    await Bun.sleep(11_000);
    return report;
  };
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-idle-"));
  const plane = await startControlPlane({ api, stateDir, port: 0 });
  try {
    const viaSocket = await ControlClient.fromStateDir(stateDir);
    const token = readFileSync(statePaths(stateDir).controlToken, "utf8").trim();
    const viaTcp = new ControlClient({ url: plane.url, token });
    const [a, b] = await Promise.all([viaSocket.update(), viaTcp.update()]);
    expect(a).toEqual(report);
    expect(b).toEqual(report);
  } finally {
    await plane.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}, 40_000);
