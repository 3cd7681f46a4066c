/**
 * The embedded engine against real peers on this machine: `ps`, `getent`,
 * `dpkg-query`, `sha256sum`, a listening socket we open ourselves, and a
 * utmp file we write in the glibc layout.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedEngine, planQuery } from "./embedded.ts";
import { SCHEMAS, TABLE_NAMES } from "./tables/index.ts";
import { UTMP_RECORD_SIZE } from "./tables/system.ts";

const engine = new EmbeddedEngine();
const q = (sql: string) => engine.querySync(sql);
const run = (cmd: string[]) => Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" }).stdout.toString();

const dir = mkdtempSync(join(tmpdir(), "outpost-embedded-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("schemas", () => {
  test("every required table exists with osquery's column names", () => {
    for (const t of [
      "processes",
      "process_open_sockets",
      "listening_ports",
      "users",
      "groups",
      "logged_in_users",
      "os_version",
      "kernel_info",
      "system_info",
      "uptime",
      "mounts",
      "interface_addresses",
      "routes",
      "crontab",
      "deb_packages",
      "file",
      "hash",
    ]) {
      expect(TABLE_NAMES).toContain(t);
    }
    expect(SCHEMAS.processes!.columns.slice(0, 4).map(([n]) => n)).toEqual([
      "pid",
      "name",
      "path",
      "cmdline",
    ]);
    expect(q("select * from os_version").columns).toEqual(SCHEMAS.os_version!.columns.map(([n]) => n));
  });
});

describe("live tables", () => {
  test("processes matches ps: our own pid, name and command line", () => {
    const r = q(`select pid, name, cmdline, parent, uid from processes where pid = ${process.pid}`);
    expect(r.rows).toHaveLength(1);
    const row = r.rows[0]!;
    const ps = run(["ps", "-o", "comm=,ppid=,uid=,args=", "-p", String(process.pid)]).trim();
    const [comm, ppid, uid, ...args] = ps.split(/\s+/);
    expect(row.name).toBe(comm!);
    expect(row.parent).toBe(ppid!);
    expect(row.uid).toBe(uid!);
    expect(row.cmdline).toBe(args.join(" "));
  });

  test("processes lists the processes ps lists (churn excluded by reading ps before and after)", () => {
    const psPids = () =>
      new Set(
        run(["ps", "-e", "-o", "pid="])
          .trim()
          .split("\n")
          .map((p) => Number(p.trim())),
      );
    const before = psPids();
    const rows = new Set(q("select pid from processes").rows.map((r) => Number(r.pid)));
    const after = psPids();
    // Alive at both ps reads → alive during the query: must be a row. A row ps never saw was born and
    // gone between the reads, or is invented.
    const missing = [...before].filter((p) => after.has(p) && !rows.has(p));
    expect(missing).toEqual([]);
    const unknown = [...rows].filter((p) => !before.has(p) && !after.has(p));
    expect(unknown.length).toBeLessThanOrEqual(Math.max(5, Math.abs(after.size - before.size) * 2));
    expect(rows.size).toBeGreaterThan(3);
  });

  test("users and groups match getent", () => {
    const root = q("select uid, gid, username, directory, shell from users where username = 'root'").rows[0]!;
    const [, , uid, gid, , home, shell] = run(["getent", "passwd", "root"]).trim().split(":");
    expect(root).toEqual({ uid: uid!, gid: gid!, username: "root", directory: home!, shell: shell! });
    const g = run(["getent", "group", "root"]).trim().split(":");
    expect(q("select gid from groups where groupname = 'root'").rows[0]!.gid).toBe(g[2]!);
  });

  test("deb_packages matches dpkg-query", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own field syntax
    const dpkg = run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${Architecture}\\n"])
      .trim()
      .split("\n")
      .sort();
    const ours = q("select name, version, arch from deb_packages")
      .rows.map((r) => `${r.name} ${r.version} ${r.arch}`)
      .sort();
    expect(ours).toEqual(dpkg);
  });

  test("listening_ports and process_open_sockets see a socket we listen on", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const lp = q(`select pid, address, protocol, family from listening_ports where port = ${port}`).rows;
      expect(lp).toContainEqual({
        pid: String(process.pid),
        address: "127.0.0.1",
        protocol: "6",
        family: "2",
      });
      const s = q(`select pid, state from process_open_sockets where local_port = ${port}`).rows;
      expect(s).toContainEqual({ pid: String(process.pid), state: "LISTEN" });
    } finally {
      server.close();
    }
  });

  test("single-row system tables", () => {
    const os = q("select platform, codename from os_version").rows[0]!;
    expect(os.platform).toBe(run(["sh", "-c", ". /etc/os-release; echo $ID"]).trim());
    expect(q("select version from kernel_info").rows[0]!.version).toBe(run(["uname", "-r"]).trim());
    const up = Number(q("select total_seconds from uptime").rows[0]!.total_seconds);
    expect(up).toBeGreaterThan(0);
    expect(q("select cpu_logical_cores from system_info").rows[0]!.cpu_logical_cores).toBe(
      run(["nproc", "--all"]).trim(),
    );
    expect(q("select path, type from mounts where path = '/'").rows).toHaveLength(1);
    expect(q("select address from interface_addresses where interface = 'lo'").rows).toContainEqual({
      address: "127.0.0.1",
    });
    expect(q("select count(*) as n from routes").rows[0]!.n).toBeDefined();
  });
});

describe("file and hash", () => {
  const a = join(dir, "a.txt");
  const b = join(dir, "sub", "b.conf");
  mkdirSync(join(dir, "sub"), { recursive: true });
  writeFileSync(a, "hello\n");
  writeFileSync(b, "x".repeat(1000));
  symlinkSync(a, join(dir, "link"));

  test("hash agrees with sha256sum, md5sum and sha1sum", () => {
    const r = q(`select md5, sha1, sha256 from hash where path = '${a}'`).rows[0]!;
    expect(r.sha256).toBe(run(["sha256sum", a]).split(" ")[0]!);
    expect(r.md5).toBe(run(["md5sum", a]).split(" ")[0]!);
    expect(r.sha1).toBe(run(["sha1sum", a]).split(" ")[0]!);
  });

  test("file attributes of a path, and a directory listing", () => {
    const f = q(`select filename, size, type, mode, symlink from file where path = '${a}'`).rows[0]!;
    expect(f).toEqual({ filename: "a.txt", size: "6", type: "regular", mode: "0644", symlink: "0" });
    const link = q(`select symlink, symlink_target_path from file where path = '${join(dir, "link")}'`)
      .rows[0]!;
    expect(link).toEqual({ symlink: "1", symlink_target_path: a });
    // A relative link keeps its own text, as readlink(1) prints it; btime is 0 on Linux, as in osquery.
    const links = mkdtempSync(join(tmpdir(), "outpost-links-"));
    symlinkSync("sub/../a.txt", join(links, "rel-link"));
    const rel = q(`select symlink_target_path, btime from file where path = '${join(links, "rel-link")}'`)
      .rows[0]!;
    rmSync(links, { recursive: true, force: true });
    expect(rel).toEqual({ symlink_target_path: "sub/../a.txt", btime: "0" });
    const names = q(`select filename from file where directory = '${dir}' order by filename`).rows.map(
      (r) => r.filename,
    );
    expect(names).toEqual(["a.txt", "link", "sub"]);
  });

  test("LIKE: % within a component, %% at any depth", () => {
    expect(q(`select path from file where path like '${dir}/%.txt'`).rows).toEqual([{ path: a }]);
    const deep = q(`select path from file where path like '${dir}/%%' order by path`).rows.map((r) => r.path);
    expect(deep).toEqual([a, join(dir, "link"), join(dir, "sub"), b]);
  });

  test("hash joined with file through USING, and through a subquery", () => {
    const r = q(`select f.size, h.sha256 from file f join hash h using (path) where f.path = '${b}'`).rows;
    expect(r).toEqual([{ size: "1000", sha256: run(["sha256sum", b]).split(" ")[0]! }]);
    const own = q(
      `select count(*) as n from hash where path in (select path from processes where pid = ${process.pid})`,
    );
    expect(own.rows[0]!.n).toBe("1");
  });

  test("without a path or directory constraint the table is empty, with a warning", () => {
    const r = q("select * from file");
    expect(r.rows).toEqual([]);
    expect(r.warnings[0]).toContain("no path or directory constraint");
  });
});

describe("planning", () => {
  test("only the tables a query uses are produced", () => {
    q("select u.username, p.pid from users u join processes p on p.uid = u.uid limit 1");
    expect(engine.lastProduced.sort()).toEqual(["processes", "users"]);
    q("select 1");
    expect(engine.lastProduced).toEqual([]);
    expect(planQuery("with x as (select 1) select * from x, uptime").tables).toEqual(["uptime"]);
  });

  test("unknown tables, bad SQL and writes fail with their own codes", () => {
    const code = (sql: string) => {
      try {
        q(sql);
        return "ok";
      } catch (e) {
        return (e as { code: string }).code;
      }
    };
    expect(code("select * from launchd")).toBe("HND_QUERY_UNKNOWN_TABLE");
    expect(code("select nosuchcolumn from uptime")).toBe("HND_QUERY_SQL");
    expect(code("selec 1")).toBe("HND_QUERY_SQL");
    expect(code("attach database '/tmp/x' as y")).toBe("HND_QUERY_REFUSED");
    expect(code("select 1; select 2")).toBe("HND_QUERY_REFUSED");
  });

  test("values are osquery strings, NULL as empty", () => {
    expect(q("select 1 as a, 2.5 as b, null as c, 'x' as d").rows).toEqual([
      { a: "1", b: "2.5", c: "", d: "x" },
    ]);
    expect(q("select 9007199254740993 as big").rows[0]!.big).toBe("9007199254740993");
  });
});

describe("logged_in_users", () => {
  test("reads glibc utmp records", () => {
    const root = join(dir, "root");
    mkdirSync(join(root, "var/run"), { recursive: true });
    const rec = Buffer.alloc(UTMP_RECORD_SIZE * 2);
    const put = (
      off: number,
      type: number,
      pid: number,
      line: string,
      user: string,
      host: string,
      sec: number,
    ) => {
      rec.writeInt16LE(type, off);
      rec.writeInt32LE(pid, off + 4);
      rec.write(line, off + 8);
      rec.write(user, off + 44);
      rec.write(host, off + 76);
      rec.writeInt32LE(sec, off + 340);
    };
    put(0, 7, 4242, "pts/0", "alice", "10.0.0.9", 1700000000);
    put(UTMP_RECORD_SIZE, 2, 1, "~", "reboot", "", 1690000000);
    writeFileSync(join(root, "var/run/utmp"), rec);
    const r = new EmbeddedEngine({ root }).querySync("select * from logged_in_users").rows;
    expect(r).toEqual([
      { type: "user", user: "alice", tty: "pts/0", host: "10.0.0.9", time: "1700000000", pid: "4242" },
    ]);
  });
});
