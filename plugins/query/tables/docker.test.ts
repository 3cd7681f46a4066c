/** docker_containers against a Docker Engine API stand-in on a unix socket (a separate process: curl blocks this one). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { genDockerContainers } from "./docker.ts";
import { ctxFor } from "./testutil.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-docker-"));
let server: Subprocess;

beforeAll(async () => {
  mkdirSync(join(root, "var/run"), { recursive: true });
  symlinkSync("/proc", join(root, "proc"));
  const socket = join(root, "var/run/docker.sock");
  const list = [
    {
      Id: "abc123",
      Names: ["/web"],
      Image: "nginx:1.25",
      ImageID: "sha256:feed",
      Command: "nginx -g 'daemon off;'",
      Created: 1700000000,
      State: "running",
      Status: "Up 2 hours",
    },
  ];
  const inspect = {
    Path: "/docker-entrypoint.sh",
    State: { Pid: process.pid, StartedAt: "2023-11-14T22:13:20Z", FinishedAt: "0001-01-01T00:00:00Z" },
    HostConfig: { Privileged: true, SecurityOpt: ["seccomp=unconfined"], ReadonlyRootfs: false },
    Config: { Entrypoint: ["/docker-entrypoint.sh"], Env: ["PATH=/usr/bin", "A=b"] },
  };
  const script = `Bun.serve({ unix: ${JSON.stringify(socket)}, fetch(req) {
    const u = new URL(req.url);
    if (u.pathname === "/containers/json" && u.searchParams.get("all") === "1") return Response.json(${JSON.stringify(list)});
    if (u.pathname === "/containers/abc123/json") return Response.json(${JSON.stringify(inspect)});
    return new Response("no", { status: 404 });
  } }); console.log("ready");`;
  server = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe" });
  await (server.stdout as ReadableStream<Uint8Array>).getReader().read();
});
afterAll(() => {
  server?.kill(9);
  rmSync(root, { recursive: true, force: true });
});

describe("docker_containers", () => {
  test("list and inspect through the socket, namespaces from /proc/<pid>/ns", () => {
    const warnings: string[] = [];
    const rows = genDockerContainers(ctxFor(root, warnings));
    expect(warnings).toEqual([]);
    expect(rows).toHaveLength(1);
    const netNs = /\[(\d+)\]/.exec(readlinkSync(`/proc/${process.pid}/ns/net`))![1];
    expect(rows[0]).toMatchObject({
      id: "abc123",
      name: "/web",
      image: "nginx:1.25",
      created: 1700000000,
      state: "running",
      pid: process.pid,
      path: "/docker-entrypoint.sh",
      config_entrypoint: "/docker-entrypoint.sh",
      privileged: 1,
      security_options: "seccomp=unconfined",
      env_variables: "PATH=/usr/bin, A=b",
      readonly_rootfs: 0,
      net_namespace: netNs,
    });
  });

  test("no socket: no rows, no warning", () => {
    const warnings: string[] = [];
    expect(genDockerContainers(ctxFor("/nonexistent-root", warnings))).toEqual([]);
    expect(warnings).toEqual([]);
  });
});
