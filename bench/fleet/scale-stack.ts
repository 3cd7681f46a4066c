/**
 * The stack bench/fleet-scale.ts runs and measures: the vendor side in a
 * temp dir, `contentctl serve --release --db` replicas, nginx in front of
 * them, the bare Bun.serve baseline, and CPU accounting from /proc.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initKeys, loadSigningKeys } from "../../core/crypto/keys.ts";
import { packDirectory } from "../../core/package/pack.ts";
import { freePort } from "../../plugins/sinks/testutil/servers.ts";
import { NGINX } from "./nginx.ts";

const ROOT = join(import.meta.dir, "../..");

// ------------------------------------------------------------------ CPU accounting

const TICK = 100; // USER_HZ
/** CPU seconds of a process: its own, and (withReaped) that of its children it has waited for. */
export function cpuOf(pid: number, withReaped = false): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    const own = Number(rest[11]) + Number(rest[12]); // utime + stime
    return (withReaped ? own + Number(rest[13]) + Number(rest[14]) : own) / TICK; // + cutime + cstime
  } catch {
    return 0;
  }
}
/**
 * CPU seconds of a process tree: every process alive now, plus what each has
 * reaped of its exited children (PostgreSQL backends and autovacuum workers
 * come and go during a phase; summing only the living ones lost theirs).
 */
export function treeCpu(root: number): number {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(f.slice(f.lastIndexOf(")") + 2).split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {}
  }
  let sum = 0;
  const walk = (p: number) => {
    sum += cpuOf(p, true);
    for (const k of kids.get(p) ?? []) walk(k);
  };
  walk(root);
  return sum;
}

// ------------------------------------------------------------------ the stack

export async function serveReplica(
  repo: string,
  cfg: string,
  url: string,
): Promise<{ port: number; proc: Bun.Subprocess }> {
  const port = await freePort();
  const proc = Bun.spawn(
    [
      process.execPath,
      join(ROOT, "bin/contentctl.ts"),
      "serve",
      "--repo",
      repo,
      "--port",
      String(port),
    ].concat(["--release", cfg, "--db", url]),
    { cwd: ROOT, env: { ...process.env, OUTPOST_LOG_QUIET: "1" }, stdout: "pipe", stderr: "inherit" },
  );
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  if (!value) throw new Error("replica exited");
  reader.releaseLock();
  return { port, proc };
}

export async function startProxy(dir: string, repo: string, replicas: number[]) {
  if (!NGINX) throw new Error("nginx is not installed");
  const port = await freePort();
  mkdirSync(join(dir, "logs"), { recursive: true });
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  keepalive_requests 1000000;
  upstream fleet { least_conn; ${replicas.map((p) => `server 127.0.0.1:${p};`).join(" ")} keepalive 128; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${repo};
    etag on;
    location ~ /\\. { return 404; }
    location /fleet/ { proxy_pass http://fleet; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /console { proxy_pass http://fleet; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const proc = Bun.spawn([NGINX, "-c", join(dir, "nginx.conf"), "-p", dir], {
    stdout: "ignore",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; ; i++) {
    try {
      await fetch(url);
      break;
    } catch {
      if (i > 200) throw new Error("nginx did not start");
      await Bun.sleep(25);
    }
  }
  return { url, proc };
}

/** The baseline: the same answers (304 / 204 after reading the body), nothing behind them. */
export function bareScript(port: number): string {
  return `Bun.serve({ hostname: "127.0.0.1", port: ${port}, async fetch(req) {
    if (req.method === "POST") { await req.arrayBuffer(); return new Response(null, { status: 204 }); }
    return new Response(null, { status: 304, headers: { etag: '"x"' } });
  } }); console.log("up");`;
}

/** Keys, a repository folder and a packer: the vendor side, in a temp dir. */
export async function makeVendor() {
  const root = mkdtempSync(join(tmpdir(), "outpost-fleet-scale-"));
  chmodSync(root, 0o755); // nginx's unprivileged workers serve the repository from here
  const keysDir = join(root, "keys");
  const repo = join(root, "repo");
  mkdirSync(repo);
  await initKeys(keysDir, { now: new Date(Date.now() - 24 * 3600_000) });
  const keys = await loadSigningKeys(keysDir);
  return {
    root,
    keysDir,
    repo,
    async pack(type: string, version: number, files: Record<string, string>, opts: { now?: Date } = {}) {
      const dir = join(root, `src-${version}`);
      mkdirSync(dir, { recursive: true });
      for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
      return packDirectory({ type, version, keys, dir, now: opts.now });
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}
