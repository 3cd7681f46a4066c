/**
 * Attacks by the network or the mirror (R6 and the transfer deadline): a real
 * HTTP server on 127.0.0.1 serves the vendor's repository honestly, then
 * misbehaves for exactly one path — the package of the next version.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, constants, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { UpdateCycleReport } from "../../core/agent/api.ts";
import { readRepoIndex } from "../../core/repo/publish.ts";
import { HttpTransport, type Transport } from "../../core/update/transport.ts";
import { type Misbehaviour, serveRepoWith, serveTruncating } from "./craft.ts";
import { expectRejected, GROUP, installGood, type Scene, type SceneOptions, TYPE } from "./harness.ts";

let scene: Scene | undefined;
let stopServer: (() => unknown) | undefined;
/** What the server does for the next version's package; undefined serves it honestly. */
let hostile: Misbehaviour | undefined;
let targetPath: string | undefined;
let serverUrl = "";

afterEach(async () => {
  await scene?.cleanup();
  await stopServer?.();
  scene = undefined;
  stopServer = undefined;
  hostile = undefined;
  targetPath = undefined;
});

/** v1 installed over HTTP from a server that will misbehave for `targetPath` once a test sets `hostile`. */
async function installOverHttp(opts: Omit<SceneOptions, "repo"> = {}): Promise<Scene> {
  return installGood({
    ...opts,
    repo: (vendor) => {
      const server = serveRepoWith(vendor.repo, (path, req) =>
        path === targetPath && hostile ? hostile(path, req) : undefined,
      );
      stopServer = () => server.stop(true);
      serverUrl = `http://127.0.0.1:${server.port}`;
      return serverUrl;
    },
  });
}

/** Publishes v2 honestly and makes its package the server's target; returns its index entry. */
async function releaseV2(s: Scene, text = "good v2") {
  await s.vendor.release(TYPE, 2, { "data.txt": text });
  const entry = readRepoIndex(s.vendor.repo, GROUP)?.content[TYPE];
  if (!entry) throw new Error("v2 not listed");
  targetPath = entry.path;
  return { ...entry, bytes: new Uint8Array(readFileSync(join(s.vendor.repo, entry.path))) };
}

const endless = () =>
  new Response(
    new ReadableStream({
      pull(c) {
        c.enqueue(new Uint8Array(64 * 1024).fill(0x41));
      },
    }),
  );

const trickle = (everyMs: number) => () =>
  new Response(
    new ReadableStream({
      async pull(c) {
        await Bun.sleep(everyMs);
        c.enqueue(new Uint8Array(1));
      },
    }),
  );

describe("transport (R6, deadlines)", () => {
  test("endless data for the package (no Content-Length) → UPD_TOO_LARGE at the declared size", async () => {
    scene = await installOverHttp();
    const entry = await releaseV2(scene);
    hostile = endless;
    await expectRejected(scene, { code: "UPD_TOO_LARGE", file: entry.path, type: TYPE });
  });

  test("an answer larger than the index declares (Content-Length over the cap) → UPD_TOO_LARGE", async () => {
    scene = await installOverHttp();
    const entry = await releaseV2(scene);
    hostile = () => new Response(Buffer.concat([entry.bytes, new Uint8Array(4096)]));
    await expectRejected(scene, { code: "UPD_TOO_LARGE", file: entry.path, type: TYPE });
  });

  test("compression bomb despite accept-encoding: identity (gzip, no Content-Length) → UPD_TOO_LARGE", async () => {
    scene = await installOverHttp();
    const entry = await releaseV2(scene);
    // 16 MiB of zeros in ~16 KiB: the cap must count decoded bytes as they stream, not buffer them first.
    const bomb = Bun.gzipSync(new Uint8Array(16 * 1024 * 1024));
    hostile = () =>
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(bomb);
            c.close();
          },
        }),
        { headers: { "content-encoding": "gzip" } },
      );
    await expectRejected(scene, { code: "UPD_TOO_LARGE", file: entry.path, type: TYPE });
  });

  test("connection closed mid-body (Content-Length promised more) → UPD_TRUNCATED", async () => {
    const server = { current: undefined as Awaited<ReturnType<typeof serveTruncating>> | undefined };
    scene = await installGood({
      repo: async (vendor) => {
        server.current = await serveTruncating(vendor.repo, (path) => path === targetPath, 700);
        stopServer = () => server.current?.close();
        return server.current.url;
      },
    });
    const entry = await releaseV2(scene);
    // The transport sees the socket close before Content-Length bytes arrived; it never hands a short body on.
    await expectRejected(scene, { code: "UPD_TRUNCATED", file: entry.path, type: TYPE });
  });

  test("a consistent but short answer (a truncated object in a cache) → UPD_SIZE_MISMATCH", async () => {
    scene = await installOverHttp();
    const entry = await releaseV2(scene);
    // HTTP-wise a complete 200 (its Content-Length matches): only the index's declared size exposes it.
    hostile = () => new Response(entry.bytes.subarray(0, entry.size - 512));
    await expectRejected(scene, { code: "UPD_SIZE_MISMATCH", file: entry.path, type: TYPE });
  });

  test("server that never answers for the package → UPD_TIMEOUT", async () => {
    scene = await installOverHttp({ config: { update: { timeoutSeconds: 0.2 } } });
    const entry = await releaseV2(scene);
    hostile = () => new Promise<Response>(() => {});
    await expectRejected(scene, { code: "UPD_TIMEOUT", file: entry.path, type: TYPE });
  });

  test("server that trickles the package → UPD_TIMEOUT (the overall deadline bounds it)", async () => {
    scene = await installOverHttp({ config: { update: { timeoutSeconds: 0.2 } } });
    const entry = await releaseV2(scene);
    hostile = trickle(10);
    await expectRejected(scene, { code: "UPD_TIMEOUT", file: entry.path, type: TYPE });
  });

  test("server that trickles below the minimum rate → UPD_STALLED before the deadline", async () => {
    // The agent measures throughput over a 10 s window that its config does not expose; the
    // transport option is shortened here so the stall check, not the 5 s deadline, ends the transfer.
    scene = await installOverHttp({
      config: { update: { timeoutSeconds: 5, minBytesPerSecond: 1024 } },
      transport: () => {
        const shortWindow: Transport = {
          get describe() {
            return serverUrl;
          },
          // serverUrl is set when installOverHttp starts the server, before the first cycle.
          get: (path, opts) => new HttpTransport(serverUrl).get(path, { ...opts, stallWindowMs: 100 }),
        };
        return shortWindow;
      },
    });
    const entry = await releaseV2(scene);
    hostile = trickle(20);
    const started = performance.now();
    await expectRejected(scene, { code: "UPD_STALLED", file: entry.path, type: TYPE });
    expect(performance.now() - started).toBeLessThan(4000);
  });
});

describe("folder repository (R6)", () => {
  // A FIFO planted in a folder repository (USB stick, share, mirror target) must not block the
  // agent's only thread: DirTransport opens with O_NONBLOCK and then refuses non-regular files.
  test("a FIFO where the package should be → UPD_NOT_FOUND, without wedging the agent", async () => {
    scene = await installGood();
    const entry = await releaseV2(scene);
    const fifo = join(scene.vendor.repo, entry.path);
    rmSync(fifo);
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    // The cycle runs in a worker so that a blocked read cannot block this test's thread.
    await scene.t.stop();
    const worker = new Worker(new URL("./agent-worker.ts", import.meta.url).href);
    try {
      let started: () => void = () => {};
      const running = new Promise<void>((done) => {
        started = done;
      });
      const answer = new Promise<WorkerAnswer>((done) => {
        worker.onmessage = (e: MessageEvent<WorkerAnswer & { started?: true }>) => {
          if (e.data.started) started();
          else done(e.data);
        };
      });
      worker.postMessage({
        stateDir: scene.t.stateDir,
        repo: scene.vendor.repo,
        trust: scene.vendor.trustPath,
      });
      // A wedged agent never answers, so the deadline only has to be longer than a cycle on a
      // loaded box (a second suite alongside), where 2 s from spawn was not enough. It starts once
      // the agent runs: start-up is not what is under test.
      await Promise.race([running, answer]);
      let deadline: ReturnType<typeof setTimeout> | undefined;
      const inTime = await Promise.race([
        answer.then(() => true),
        new Promise<boolean>((done) => {
          deadline = setTimeout(() => done(false), 10_000);
        }),
      ]);
      clearTimeout(deadline);
      if (!inTime) await releaseFifoReader(fifo, answer);
      const result = await answer;
      expect(inTime).toBe(true);
      expect(result.error).toBeUndefined();
      expect(result.report?.rejected.map((r) => [r.code, r.file.includes(entry.path)])).toEqual([
        ["UPD_NOT_FOUND", true],
      ]);
      expect([result.live, result.version]).toEqual([scene.live.text, scene.live.version]);
    } finally {
      worker.terminate();
    }
  });
});

interface WorkerAnswer {
  report?: UpdateCycleReport;
  live?: string | null;
  version?: number | null;
  error?: string;
}

/** Unblocks a reader stuck opening `fifo`: a writer that opens and closes at once gives it EOF. */
async function releaseFifoReader(fifo: string, settled: Promise<unknown>): Promise<void> {
  let done = false;
  void settled.then(() => {
    done = true;
  });
  while (!done) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      return;
    } catch {
      // ENXIO: no reader has the FIFO open yet; the worker is still on its way to it.
      await Bun.sleep(20);
    }
  }
}
