/**
 * Two network namespaces joined by a veth pair, for tests and benchmarks
 * that must not touch this machine's own network: `a` (10.77.0.1) runs the
 * servers, `b` (10.77.0.2) runs the agent and the clients. Names carry a
 * per-run suffix, so two copies of the suite can run side by side.
 */
import { join } from "node:path";

export interface NetnsPair {
  a: string;
  b: string;
  addrA: string;
  addrB: string;
  /** Runs argv inside namespace `ns`; throws with stderr on failure. */
  run(ns: string, argv: string[]): string;
  /** Starts a long-running process inside `ns`. */
  spawn(ns: string, argv: string[], env?: Record<string, string>): ReturnType<typeof Bun.spawn>;
  /** Runs the test client inside `b`; parses its JSON line. */
  client<T>(args: (string | number)[], timeoutMs?: number): Promise<T>;
  cleanup(): void;
}

const SCRIPTS = join(import.meta.dir, "testdata");

export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  return Bun.spawnSync(["ip", "netns", "list"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

function sh(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

export function createNetnsPair(): NetnsPair {
  const id = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const a = `opa-${id}`;
  const b = `opb-${id}`;
  const va = `va${id}`.slice(0, 15);
  const vb = `vb${id}`.slice(0, 15);
  const addrA = "10.77.0.1";
  const addrB = "10.77.0.2";
  const cleanup = () => {
    Bun.spawnSync(["ip", "netns", "del", a], { stderr: "ignore" });
    Bun.spawnSync(["ip", "netns", "del", b], { stderr: "ignore" });
  };
  try {
    sh(["ip", "netns", "add", a]);
    sh(["ip", "netns", "add", b]);
    sh(["ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b]);
    sh(["ip", "-n", a, "addr", "add", `${addrA}/24`, "dev", va]);
    sh(["ip", "-n", b, "addr", "add", `${addrB}/24`, "dev", vb]);
    for (const [ns, dev] of [
      [a, va],
      [b, vb],
    ] as const) {
      sh(["ip", "-n", ns, "link", "set", dev, "up"]);
      sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  const pair: NetnsPair = {
    a,
    b,
    addrA,
    addrB,
    run: (ns, argv) => sh(["ip", "netns", "exec", ns, ...argv]),
    spawn: (ns, argv, env) =>
      Bun.spawn(["ip", "netns", "exec", ns, ...argv], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, OUTPOST_LOG_QUIET: "1", ...env },
      }),
    async client<T>(args: (string | number)[], timeoutMs = 30_000): Promise<T> {
      const p = pair.spawn(b, [process.execPath, join(SCRIPTS, "client.ts"), ...args.map(String)]);
      const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
      const out = await new Response(p.stdout as ReadableStream).text();
      await p.exited;
      clearTimeout(timer);
      const line = out.trim().split("\n").pop() ?? "";
      try {
        return JSON.parse(line) as T;
      } catch {
        throw new Error(`client ${args.join(" ")}: no JSON answer (${out.trim() || "nothing"})`);
      }
    },
    cleanup,
  };
  return pair;
}

/** Starts the test servers in `a` and waits until they listen. */
export async function startServers(pair: NetnsPair, tcpPort: number, udpPort: number, sinkPort?: number) {
  const p = pair.spawn(pair.a, [
    process.execPath,
    join(SCRIPTS, "server.ts"),
    String(tcpPort),
    String(udpPort),
    ...(sinkPort ? [String(sinkPort)] : []),
  ]);
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  const deadline = Date.now() + 15_000;
  let text = "";
  while (!text.includes("ready")) {
    if (Date.now() > deadline) throw new Error(`test server did not start: ${text}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`test server exited: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return p;
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what} (last: ${String((last as Error)?.message ?? JSON.stringify(last))})`,
      );
    await Bun.sleep(50);
  }
}
