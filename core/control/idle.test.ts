/**
 * An action that takes longer than the TCP listener's idle limit before its
 * first byte (an update cycle installing many types on a busy host) still
 * gets its answer, over the unix socket and over TCP. The agent runs with
 * Bun's 10 s limit; here the same option is set to 1 s, and the slow update
 * is timed by a condition instead of a clock: it answers only after a
 * control connection, silent since after both update requests arrived, has
 * been cut by the server. By then both update connections have been silent
 * longer than a connection the server does cut, so only the per-request lift
 * keeps them open.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { statePaths } from "../config.ts";
import { ControlClient } from "./client.ts";
import { startControlPlane } from "./server.ts";

/**
 * Opens a keep-alive connection, makes one request, then stays silent. Resolves when the server
 * closes it; rejects after `ms` (a limit not in effect would otherwise hang the slow update).
 */
function silentAfterOneRequest(port: number, ms: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`idle connection still open after ${ms} ms`)), ms);
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          s.write("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        },
        data() {},
        close() {
          clearTimeout(timer);
          resolve(performance.now() - t0);
        },
        error(_s, e) {
          clearTimeout(timer);
          reject(e);
        },
      },
    }).catch(reject);
  });
}

test("a POST /v1/update silent for longer than the idle limit is answered over the socket and over TCP", async () => {
  const api = new FakeAgentApi();
  const report = await api.update();
  let arrived = 0;
  let bothArrived!: () => void;
  const arrivals = new Promise<void>((r) => {
    bothArrived = r;
  });
  let cutSeen!: Promise<number>;
  api.update = async () => {
    if (++arrived === 2) bothArrived();
    await arrivals;
    await cutSeen;
    return report;
  };
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-idle-"));
  const plane = await startControlPlane({ api, stateDir, port: 0, idleTimeoutSeconds: 1 });
  try {
    const viaSocket = await ControlClient.fromStateDir(stateDir);
    const token = readFileSync(statePaths(stateDir).controlToken, "utf8").trim();
    const viaTcp = new ControlClient({ url: plane.url, token });
    const answers = Promise.all([viaSocket.update(), viaTcp.update()]);
    // The control starts only once both updates are in the handler, so it went silent after them.
    cutSeen = arrivals.then(() => silentAfterOneRequest(plane.port, 25_000));
    const [a, b] = await answers;
    // Bun sweeps idle sockets on a coarse tick, so the cut comes anywhere up to a little past the limit
    // (98 ms and 834 ms were both seen for 1 s): no lower bound holds. What the test rests on is the
    // order — both update connections went silent before the control did, so whichever sweep cut the
    // control found them idle at least as long — and that a cut happened at all (no limit would leave
    // the control open until silentAfterOneRequest rejects).
    expect(await cutSeen).toBeGreaterThan(0);
    expect(a).toEqual(report);
    expect(b).toEqual(report);
  } finally {
    await plane.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}, 40_000);
