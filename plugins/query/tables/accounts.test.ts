/** shell_history, last, authorized_keys, sudoers from fixtures; suid_bin against find(1). */
import { afterAll, describe, expect, test } from "bun:test";
import {
  genAuthorizedKeys,
  genLast,
  genShellHistory,
  genSudoers,
  genSuidBin,
  parseShellHistory,
  SUID_SEARCH_DIRS,
} from "./accounts.ts";
import { UTMP_RECORD_SIZE } from "./system.ts";
import { ctxFor, fixtureRoot, tool } from "./testutil.ts";

function utmp(type: number, pid: number, line: string, user: string, host: string, time: number): Buffer {
  const b = Buffer.alloc(UTMP_RECORD_SIZE);
  b.writeInt16LE(type, 0);
  b.writeInt32LE(pid, 4);
  b.write(line, 8);
  b.write(user, 44);
  b.write(host, 76);
  b.writeInt32LE(time, 340);
  return b;
}

const fx = fixtureRoot({
  "etc/passwd":
    "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/zsh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
  "root/.bash_history": "#1700000000\nls -la\nwhoami\n",
  "home/alice/.zsh_history": ": 1700000100:0;echo hi\n",
  "home/alice/.ssh/authorized_keys":
    '# keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx alice@laptop\nfrom="10.0.0.0/8",no-pty ssh-rsa AAAAB3NzaC1yc2E= ops key\n',
  "etc/sudoers": "Defaults\tenv_reset\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
  "etc/sudoers.d/alice": "alice ALL=(ALL) NOPASSWD: \\\n  /usr/bin/apt\n",
  "etc/sudoers.d/skip.bak": "ignored ALL=(ALL) ALL\n",
  "var/log/wtmp": Buffer.concat([
    utmp(2, 0, "~", "reboot", "6.1.0", 1700000000),
    utmp(7, 4242, "pts/0", "alice", "10.0.0.7", 1700000050),
    utmp(1, 0, "~", "runlevel", "", 1700000001),
    utmp(8, 4242, "pts/0", "", "", 1700000090),
  ]),
});
afterAll(fx.cleanup);

describe("account tables", () => {
  test("shell_history: bash timestamps apply to the next command, zsh extended format", () => {
    expect(genShellHistory(ctxFor(fx.root))).toEqual([
      { uid: 0, time: 1700000000, command: "ls -la", history_file: "/root/.bash_history" },
      { uid: 0, time: 0, command: "whoami", history_file: "/root/.bash_history" },
      { uid: 1000, time: 1700000100, command: "echo hi", history_file: "/home/alice/.zsh_history" },
    ]);
    expect(parseShellHistory("", 0, "x")).toEqual([]);
  });

  test("last: logins, logouts and boots from wtmp; other record types skipped", () => {
    expect(
      genLast(ctxFor(fx.root)).map(
        (r) => `${r.type_name} ${r.username} ${r.tty} ${r.pid} ${r.host} ${r.time}`,
      ),
    ).toEqual([
      "boot-time reboot ~ 0 6.1.0 1700000000",
      "user-process alice pts/0 4242 10.0.0.7 1700000050",
      "dead-process  pts/0 4242  1700000090",
    ]);
  });

  test("authorized_keys: options, algorithm, key and comment", () => {
    expect(genAuthorizedKeys(ctxFor(fx.root))).toEqual([
      {
        uid: 1000,
        options: "",
        algorithm: "ssh-ed25519",
        key: "AAAAC3NzaC1lZDI1NTE5AAAAIHx",
        comment: "alice@laptop",
        key_file: "/home/alice/.ssh/authorized_keys",
      },
      {
        uid: 1000,
        options: 'from="10.0.0.0/8",no-pty',
        algorithm: "ssh-rsa",
        key: "AAAAB3NzaC1yc2E=",
        comment: "ops key",
        key_file: "/home/alice/.ssh/authorized_keys",
      },
    ]);
  });

  test("sudoers: follows @includedir as sudo does (skips names with a dot), joins continued lines", () => {
    expect(genSudoers(ctxFor(fx.root))).toEqual([
      { source: "/etc/sudoers", header: "Defaults", rule_details: "env_reset" },
      { source: "/etc/sudoers", header: "root", rule_details: "ALL=(ALL:ALL) ALL" },
      { source: "/etc/sudoers", header: "@includedir", rule_details: "/etc/sudoers.d" },
      { source: "/etc/sudoers.d/alice", header: "alice", rule_details: "ALL=(ALL) NOPASSWD: /usr/bin/apt" },
    ]);
  });

  test("suid_bin finds what find -perm /6000 finds in the same directories", () => {
    // /tmp entries of other processes (a second copy of the suite) come and go while find reads them:
    // "No such file or directory" for such an entry is not a failure of the comparison.
    const r = Bun.spawnSync(
      [
        "find",
        ...SUID_SEARCH_DIRS.filter((d) => Bun.spawnSync(["test", "-d", d]).exitCode === 0),
        "-maxdepth",
        "1",
        "-type",
        "f",
        "-perm",
        "/6000",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const complaints = r.stderr
      .toString()
      .split("\n")
      .filter((l) => l && !l.endsWith("No such file or directory"));
    expect(complaints).toEqual([]);
    const found = r.stdout.toString().split("\n").filter(Boolean);
    // /bin may be a symlink to /usr/bin: compare by real file.
    const real = (p: string) => tool(["realpath", p]).trim();
    const ours = genSuidBin(ctxFor());
    expect(new Set(ours.map((r) => real(String(r.path))))).toEqual(new Set(found.map(real)));
    for (const r of ours) expect(["S", "G", "SG"]).toContain(String(r.permissions));
  });
});
