import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCapabilities } from "../../core/handler/capabilities.ts";
import type { FsCapability } from "../../core/handler/contract.ts";
import { ProcSensor, parseAddress } from "./sensor.ts";

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

function fakeProc(): {
  root: string;
  fs: FsCapability;
  addProcess(pid: number, cmd: string[], ppid?: number): void;
  tcp(lines: string[]): void;
} {
  const dir = mkdtempSync(join(tmpdir(), "outpost-fakeproc-"));
  root = dir;
  mkdirSync(join(dir, "net"));
  const caps = createCapabilities(
    {
      name: "Behavior",
      description: "test",
      group: "behavior",
      privileges: {
        runAs: "agent",
        fs: { mode: "read-only", paths: [`${dir}/**`] },
        net: "none",
        exec: false,
        agent: false,
        hostView: false,
      },
      limits: { memoryMb: 64, cpuSeconds: 60 },
      maxPackageBytes: 1024,
    },
    { log: { info() {}, warn() {} }, emit() {}, workDir: join(dir, "work") },
  );
  const header =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
  return {
    root: dir,
    fs: caps.fs!,
    addProcess(pid, cmd, ppid = 1) {
      mkdirSync(join(dir, String(pid)));
      writeFileSync(join(dir, String(pid), "cmdline"), `${cmd.join("\0")}\0`);
      writeFileSync(
        join(dir, String(pid), "status"),
        `Name:\t${cmd[0]!.split("/").pop()}\nPPid:\t${ppid}\nUid:\t1000\t1000\t1000\t1000\n`,
      );
    },
    tcp(lines) {
      writeFileSync(join(dir, "net", "tcp"), [header, ...lines].join("\n"));
    },
  };
}

describe("the /proc sensor", () => {
  test("new processes become process.start events; the ones present at start are the baseline", () => {
    const p = fakeProc();
    p.addProcess(1, ["/sbin/init"]);
    p.tcp([]);
    const sensor = new ProcSensor(p.fs, () => {}, {
      procRoot: p.root,
      intervalMs: 1000,
      processes: true,
      connections: true,
      now: () => 42,
    });
    sensor.start();
    sensor.stop();
    expect(sensor.poll()).toEqual([]);
    p.addProcess(4242, ["/usr/bin/curl", "-s", "http://x/i.sh"], 77);
    expect(sensor.poll()).toEqual([
      {
        type: "process.start",
        time: 42,
        pid: 4242,
        ppid: 77,
        uid: 1000,
        name: "curl",
        exe: "/usr/bin/curl",
        cmdline: "/usr/bin/curl -s http://x/i.sh",
      },
    ]);
    expect(sensor.poll()).toEqual([]);
  });

  test("a child caught between fork and exec is reported once it runs its own program", () => {
    const p = fakeProc();
    p.addProcess(10, ["/usr/bin/bash", "-l"]);
    p.tcp([]);
    const sensor = new ProcSensor(p.fs, () => {}, {
      procRoot: p.root,
      intervalMs: 1000,
      processes: true,
      connections: false,
      now: () => 1,
    });
    sensor.start();
    sensor.stop();
    p.addProcess(11, ["/usr/bin/bash", "-l"], 10);
    expect(sensor.poll()).toEqual([]);
    writeFileSync(join(p.root, "11", "cmdline"), "/usr/bin/curl\0http://x\0");
    expect(sensor.poll().map((e) => e.cmdline)).toEqual(["/usr/bin/curl http://x"]);
    // A fork that never execs is still reported, after a few polls.
    p.addProcess(12, ["/usr/bin/bash", "-l"], 10);
    expect([sensor.poll(), sensor.poll(), sensor.poll(), sensor.poll()].flat().map((e) => e.pid)).toEqual([
      12,
    ]);
  });

  test("new established TCP connections become network.connect events", () => {
    const p = fakeProc();
    p.tcp([
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1",
    ]);
    const sensor = new ProcSensor(p.fs, () => {}, {
      procRoot: p.root,
      intervalMs: 1000,
      processes: false,
      connections: true,
      now: () => 7,
    });
    sensor.start();
    sensor.stop();
    p.tcp([
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1",
      "   1: 0500000A:C8D2 0900710C:115C 06 00000000:00000000 00:00000000 00000000  1000        0 222 1",
      "   2: 0500000A:C8D3 2A00CB23:01BB 01 00000000:00000000 00:00000000 00000000     0        0 333 1",
    ]);
    const events = sensor.poll();
    expect(events).toEqual([
      {
        type: "network.connect",
        time: 7,
        proto: "tcp",
        local: "10.0.0.5",
        lport: 51411,
        remote: "35.203.0.42",
        rport: 443,
        uid: 0,
        inode: 333,
      },
    ]);
  });

  test("procfs addresses decode for IPv4, IPv6 and v4-mapped IPv6", () => {
    expect(parseAddress("0100007F:1F90")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseAddress("00000000000000000000000001000000:0016")).toEqual({ host: "::1", port: 22 });
    expect(parseAddress("0000000000000000FFFF00000500000A:01BB")).toEqual({ host: "10.0.0.5", port: 443 });
  });
});
