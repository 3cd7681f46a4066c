/**
 * Real stores for the sink tests, each started by the test on loopback in a
 * temp dir, on a port the test picks, as an unprivileged user where the
 * server refuses root: a throwaway PostgreSQL cluster (initdb + pg_ctl),
 * a ClickHouse server with its own config.xml, and rsyslogd with imrelp
 * and omfile. `stop()` / `start()` make an outage in the middle of a test.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const p = s.port ?? 0;
  s.stop(true);
  return p;
}

export async function waitFor(
  what: string,
  ok: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      if (await ok()) return;
    } catch {}
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function run(cmd: string[], opts: { user?: string } = {}): string {
  const argv = opts.user ? ["runuser", "-u", opts.user, "--", ...cmd] : cmd;
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function pgBin(name: string): string {
  const root = "/usr/lib/postgresql";
  const v = readdirSync(root).sort((a, b) => Number(b) - Number(a))[0];
  return join(root, v!, "bin", name);
}

export const havePostgres =
  existsSync("/usr/lib/postgresql") && readdirSync("/usr/lib/postgresql").length > 0;
export const haveClickHouse =
  existsSync("/usr/sbin/clickhouse-server") || existsSync("/usr/bin/clickhouse-server");
export const haveRsyslog =
  existsSync("/usr/sbin/rsyslogd") && existsSync("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so");

const isRoot = process.getuid?.() === 0;

export interface Postgres {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): void;
  query(sql: string): Promise<Record<string, unknown>[]>;
  destroy(): void;
}

/** A fresh temp dir the unprivileged server user can enter (mkdtemp makes 0700 dirs). */
function serverDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** A throwaway cluster in its own temp dir; owned by the `postgres` user when the test runs as root. */
export async function startPostgres(): Promise<Postgres> {
  const user = isRoot ? "postgres" : undefined;
  const dir = serverDir("outpost-pgdata-");
  const data = join(dir, "data");
  if (user) {
    const uid = Number(run(["id", "-u", user]).trim());
    const gid = Number(run(["id", "-g", user]).trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o755);
  run([pgBin("initdb"), "-D", data, "-U", "outpost", "--auth=trust", "-E", "UTF8", "--no-sync"], { user });
  const port = await freePort();
  const pg: Postgres = {
    url: `postgres://outpost@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      run(
        [
          pgBin("pg_ctl"),
          "-D",
          data,
          "-l",
          join(dir, "log"),
          "-w",
          "-o",
          `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
          "start",
        ],
        { user },
      );
    },
    stop() {
      run([pgBin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"], { user });
    },
    async query(text: string) {
      const { SQL } = await import("bun");
      const sql = new SQL({ url: pg.url, max: 1 });
      try {
        return (await sql.unsafe(text)) as Record<string, unknown>[];
      } finally {
        await sql.close();
      }
    },
    destroy() {
      try {
        pg.stop();
      } catch {}
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

export { readFileSync, writeFileSync };

export interface Rsyslog {
  /** imrelp on 127.0.0.1. */
  port: number;
  /** imrelp on [::1]. */
  port6: number;
  /** imtcp (octet counting) and imudp. */
  tcpPort: number;
  udpPort: number;
  /** Unix stream socket served by imptcp. */
  socket: string;
  out: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Lines omfile wrote so far (RFC 5424, one per message). */
  lines(): string[];
  destroy(): Promise<void>;
}

/** rsyslogd in the foreground with its own config: imrelp on a loopback port, imptcp on a unix socket, omfile. */
export async function startRsyslog(): Promise<Rsyslog> {
  const dir = serverDir("outpost-rsyslog-");
  const [port, port6, tcpPort, udpPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const out = join(dir, "out.log");
  const socket = join(dir, "syslog.sock");
  const conf = join(dir, "rsyslog.conf");
  writeFileSync(
    conf,
    `global(workDirectory="${dir}" maxMessageSize="1m")
module(load="imrelp")
module(load="imptcp")
module(load="imtcp")
module(load="imudp")
input(type="imrelp" port="${port}" address="127.0.0.1")
input(type="imrelp" port="${port6}" address="::1")
input(type="imtcp" port="${tcpPort}" address="127.0.0.1")
input(type="imudp" port="${udpPort}" address="127.0.0.1")
input(type="imptcp" path="${socket}" unlink="on")
action(type="omfile" file="${out}" template="RSYSLOG_SyslogProtocol23Format" flushOnTXEnd="on" asyncWriting="off")
`,
  );
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  const listening = async () => {
    const { connect } = await import("node:net");
    return new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
  };
  const r: Rsyslog = {
    port,
    port6,
    tcpPort,
    udpPort,
    socket,
    out,
    async start() {
      proc = Bun.spawn(["rsyslogd", "-n", "-f", conf, "-i", join(dir, "rsyslogd.pid")], {
        stdout: "ignore",
        stderr: "pipe",
      });
      await waitFor("rsyslogd listening", async () => (await listening()) && existsSync(socket));
    },
    async stop() {
      proc?.kill("SIGTERM");
      await proc?.exited;
      proc = undefined;
    },
    lines() {
      if (!existsSync(out)) return [];
      return readFileSync(out, "utf8")
        .split("\n")
        .filter((l) => l.length > 0);
    },
    async destroy() {
      await r.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await r.start();
  return r;
}

export interface ClickHouse {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  query(sql: string): Promise<string>;
  destroy(): Promise<void>;
}

/** clickhouse-server with its own config.xml / users.xml in a temp dir, HTTP and native ports on loopback. */
export async function startClickHouse(): Promise<ClickHouse> {
  const dir = serverDir("outpost-clickhouse-");
  const [http, tcp, inter] = [await freePort(), await freePort(), await freePort()];
  for (const d of ["data", "tmp", "user_files", "format_schemas"])
    mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, "config.xml"),
    `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/server.log</log><errorlog>${dir}/error.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>${http}</http_port>
  <tcp_port>${tcp}</tcp_port>
  <interserver_http_port>${inter}</interserver_http_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>64</max_connections>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
`,
  );
  writeFileSync(
    join(dir, "users.xml"),
    `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`,
  );
  const user = isRoot ? "clickhouse" : undefined;
  if (user) run(["chown", "-R", `${user}:`, dir]);
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  const url = `http://127.0.0.1:${http}/`;
  const ch: ClickHouse = {
    url,
    async start() {
      const cmd = ["/usr/sbin/clickhouse-server", `--config-file=${dir}/config.xml`];
      proc = Bun.spawn(user ? ["runuser", "-u", user, "--", ...cmd] : cmd, {
        stdout: "ignore",
        stderr: "ignore",
        cwd: dir,
      });
      // A deadline sized for two copies of the suite starting their servers at once on 2 cores; a
      // server that exits (a port taken meanwhile, say) fails at once with its own words.
      const started = proc;
      const deadline = Date.now() + 150_000;
      for (;;) {
        if (started.exitCode !== null) {
          let log = "";
          try {
            log = readFileSync(join(dir, "error.log"), "utf8").slice(-500);
          } catch {}
          throw new Error(`clickhouse-server exited (${started.exitCode}): ${log}`);
        }
        if (
          await fetch(`${url}ping`).then(
            (r) => r.ok,
            () => false,
          )
        )
          break;
        if (Date.now() > deadline) throw new Error("timed out waiting for clickhouse answering");
        await Bun.sleep(50);
      }
    },
    async stop() {
      proc?.kill("SIGTERM");
      await proc?.exited;
      proc = undefined;
    },
    async query(sql: string) {
      const res = await fetch(url, { method: "POST", body: sql });
      const text = await res.text();
      if (!res.ok) throw new Error(`clickhouse: ${text}`);
      return text;
    },
    async destroy() {
      await ch.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await ch.start();
  return ch;
}
