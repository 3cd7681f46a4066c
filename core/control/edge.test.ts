/**
 * The control plane's edge (peer-guard.ts): E1 a request without a Host
 * header is a 400, not a 500; E2 a connection from a host process is
 * refused on the unix socket and on TCP, while the same request from
 * anyone else is served. A real child process (curl) stands in for the
 * host: it is registered exactly as the HostManager registers a host.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { trackHostProcess } from "../host/peers.ts";
import { type ControlPlane, startControlPlane } from "./server.ts";

let stateDir: string;
let plane: ControlPlane | undefined;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-edge-"));
});
afterEach(async () => {
  await plane?.stop();
  plane = undefined;
  rmSync(stateDir, { recursive: true, force: true });
});

/** Sends raw bytes over TCP and returns the whole answer. */
async function raw(port: number, request: string): Promise<string> {
  const chunks: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        chunks.push(new TextDecoder().decode(d));
        if (/\r\n\r\n[\s\S]*\}$/.test(chunks.join(""))) resolve();
      },
      close: () => resolve(),
      error: () => resolve(),
    },
  });
  s.write(request);
  await promise;
  s.end();
  return chunks.join("");
}

describe("E1: HTTP/1.0 without Host", () => {
  test("answers 400 CTL_BAD_REQUEST on every path, the status fast path included", async () => {
    plane = await startControlPlane({ api: new FakeAgentApi(), stateDir });
    for (const path of ["/v1/health", "/v1/status", "/v1/content"]) {
      const answer = await raw(plane.port, `GET ${path} HTTP/1.0\r\n\r\n`);
      expect(answer.split("\r\n")[0]).toContain(" 400 ");
      expect(answer).toContain('"code":"CTL_BAD_REQUEST"');
    }
    // An HTTP/1.0 client that sends Host is an ordinary client.
    const ok = await raw(plane.port, "GET /v1/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    expect(ok.split("\r\n")[0]).toContain(" 200 ");
  }, 20_000);
});

/**
 * curl as a "host process": started suspended behind a shell that waits for
 * a go file, so the test can register its pid before it connects.
 */
async function curlAsHost(args: string[]): Promise<{ status: string; body: string }> {
  const go = join(stateDir, `go-${Math.random().toString(36).slice(2)}`);
  const p = Bun.spawn(
    [
      "sh",
      "-c",
      `while [ ! -e "${go}" ]; do sleep 0.01; done; exec curl -s -o - -w '\\n%{http_code}' "$@"`,
      "curl",
      ...args,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const untrack = trackHostProcess(p.pid);
  try {
    await Bun.write(go, "");
    const out = await new Response(p.stdout).text();
    await p.exited;
    const lines = out.trimEnd().split("\n");
    return { status: lines.pop() ?? "", body: lines.join("\n") };
  } finally {
    untrack();
  }
}

describe.skipIf(!Bun.which("curl"))("E2: host processes are refused", () => {
  test("unix socket: refused with CTL_PEER_REFUSED even with the right token; others served", async () => {
    plane = await startControlPlane({ api: new FakeAgentApi(), stateDir });
    const auth = `Authorization: Bearer ${plane.token}`;
    const host = await curlAsHost(["--unix-socket", plane.socket!, "-H", auth, "http://localhost/v1/status"]);
    expect(host.status).toMatch(/^(403|000)$/);
    if (host.status === "403") expect(host.body).toContain("CTL_PEER_REFUSED");
    // Another process (an administrator's client) on the same socket is served.
    const admin = Bun.spawn(
      [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--unix-socket",
        plane.socket!,
        "-H",
        auth,
        "http://localhost/v1/status",
      ],
      { stdout: "pipe" },
    );
    expect(await new Response(admin.stdout).text()).toBe("200");
    const self = await fetch("http://localhost/v1/status", {
      unix: plane.socket!,
      headers: { authorization: `Bearer ${plane.token}` },
    });
    expect(self.status).toBe(200);
  }, 20_000);

  test("TCP: the peer's socket is traced to the host process and refused", async () => {
    plane = await startControlPlane({ api: new FakeAgentApi(), stateDir });
    const host = await curlAsHost(["-H", `Authorization: Bearer ${plane.token}`, `${plane.url}/v1/status`]);
    expect(host.status).toBe("403");
    expect(host.body).toContain("CTL_PEER_REFUSED");
    const ok = await fetch(`${plane.url}/v1/status`, { headers: { authorization: `Bearer ${plane.token}` } });
    expect(ok.status).toBe(200);
  }, 20_000);
});
