/**
 * A stock nginx serving a repository folder on loopback, with its own
 * config, temp folders and an access log that records status and bytes sent
 * per request — the origin side of the fleet figures.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => existsSync(p));

export interface Nginx {
  url: string;
  accessLog: string;
  /** Byte offset of the access log now, to count a phase's requests later. */
  mark(): number;
  /** Requests, 304s and bytes sent (headers included) since a mark. */
  since(mark: number): OriginStats;
  stop(): Promise<void>;
}

export interface OriginStats {
  requests: number;
  notModified: number;
  ok: number;
  other: number;
  bytesSent: number;
}

async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const p = s.port ?? 0;
  s.stop(true);
  return p;
}

/** `readable`: folders (ours, e.g. the temp root) that nginx's unprivileged workers must traverse. */
export async function startNginx(
  repo: string,
  dir: string,
  opts: { workers?: number; readable?: string[] } = {},
): Promise<Nginx> {
  if (!NGINX) throw new Error("nginx is not installed (apt-get install nginx)");
  mkdirSync(join(dir, "logs"), { recursive: true });
  for (const p of opts.readable ?? []) chmodSync(p, 0o755);
  const port = await freePort();
  const accessLog = join(dir, "logs/access.log");
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes ${opts.workers ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 4096; }
http {
  log_format fleet '$status $bytes_sent $request_uri';
  access_log ${accessLog} fleet;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${repo};
    etag on;
    location ~ /\\. { return 404; }
  }
}
`,
  );
  const proc = Bun.spawn([NGINX, "-c", join(dir, "nginx.conf"), "-p", dir], {
    stdout: "ignore",
    stderr: "pipe",
  });
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; ; i++) {
    try {
      await fetch(url);
      break;
    } catch {
      if (i > 200) throw new Error(`nginx did not start on ${url}`);
      await Bun.sleep(25);
    }
  }
  const size = () => (existsSync(accessLog) ? statSync(accessLog).size : 0);
  return {
    url,
    accessLog,
    mark: size,
    since(mark) {
      const text = readFileSync(accessLog).subarray(mark).toString("utf8");
      const s: OriginStats = { requests: 0, notModified: 0, ok: 0, other: 0, bytesSent: 0 };
      for (const line of text.split("\n")) {
        if (!line) continue;
        const [status, bytes] = line.split(" ");
        s.requests++;
        s.bytesSent += Number(bytes) || 0;
        if (status === "304") s.notModified++;
        else if (status === "200") s.ok++;
        else s.other++;
      }
      return s;
    },
    async stop() {
      proc.kill("SIGQUIT");
      await proc.exited;
    },
  };
}
