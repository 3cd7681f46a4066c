/**
 * The repository is plain static files: a stock nginx serving the folder is
 * all an origin or CDN needs. This starts a real nginx on loopback (own
 * config, own temp dirs, no root privileges needed for the port) and runs
 * the agent's update against it, including a conditional GET answered 304.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { liveText, makeVendor, startAgent, type TestAgent, type Vendor } from "./fixtures/vendor.ts";

const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => existsSync(p));
const run = NGINX ? describe : describe.skip;
if (!NGINX)
  console.warn("test/nginx.test.ts skipped: nginx is not installed (apt-get install nginx; .ci/run does)");

let vendor: Vendor;
let agent: TestAgent | undefined;
let dir: string;
let port = 0;
let proc: ReturnType<typeof Bun.spawn> | undefined;

async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const p = s.port ?? 0;
  s.stop(true);
  return p;
}

async function waitForListening(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await Bun.sleep(25);
    }
  }
  throw new Error(`nginx did not start listening on ${url}`);
}

run("nginx as the repository server", () => {
  beforeAll(async () => {
    vendor = await makeVendor();
    // nginx workers drop to an unprivileged user; the temp folders are 0700 by default.
    chmodSync(vendor.root, 0o755);
    dir = mkdtempSync(join(tmpdir(), "outpost-nginx-"));
    mkdirSync(join(dir, "logs"));
    port = await freePort();
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 64; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  server {
    listen 127.0.0.1:${port};
    root ${vendor.repo};
    etag on;
  }
}
`,
    );
    proc = Bun.spawn([NGINX!, "-c", join(dir, "nginx.conf"), "-p", dir], {
      stdout: "ignore",
      stderr: "pipe",
    });
    await waitForListening(`http://127.0.0.1:${port}/`);
  });

  afterAll(async () => {
    await agent?.stop();
    proc?.kill("SIGQUIT");
    await proc?.exited;
    if (agent) rmSync(agent.stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    vendor.cleanup();
  });

  test("the agent installs content from nginx and revalidates the index with If-None-Match", async () => {
    await vendor.release("TestText", 1, { "data.txt": "served by nginx" });
    agent = await startAgent(vendor, { repo: `http://127.0.0.1:${port}` });
    const first = await agent.agent.update();
    expect(first.ok).toBe(true);
    expect(first.installed).toEqual([{ type: "TestText", version: 1, previousVersion: null }]);
    expect(await liveText(agent.agent)).toBe("served by nginx");

    const second = await agent.agent.update();
    expect(second.index).toBe("not-modified");

    await vendor.release("TestText", 2, { "data.txt": "v2 via nginx" });
    const third = await agent.agent.update();
    expect(third.index).toBe("updated");
    expect(await liveText(agent.agent)).toBe("v2 via nginx");

    // nginx really saw a conditional request and answered it with 304.
    const log = readFileSync(join(dir, "logs/access.log"), "utf8");
    expect(log).toMatch(/GET \/groups\/public-1\/index\.json HTTP\/1\.1" 304/);
  });
});
