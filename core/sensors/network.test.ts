/**
 * The network sensor against the real kernel (root, CI), in a network
 * namespace of its own (testdata/network-probe.ts under `unshare -n`): every
 * loopback connect becomes one network.connect with the right ports and the
 * owner's uid, and the nftables table is gone after stop. The rule script and
 * the fallback when nft is missing are checked without the kernel.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { NetworkSensor, nflogScript } from "./network.ts";

const isRoot = process.getuid?.() === 0;
const canUnshare = isRoot && Bun.spawnSync(["unshare", "-n", "true"]).exitCode === 0;

describe.if(canUnshare)("network sensor (nftables log rule + nfnetlink_log)", () => {
  test("20 loopback connects (IPv4 and IPv6): 20 network.connect events, ports and uid right; rule removed on stop", async () => {
    const p = Bun.spawn(
      ["unshare", "-n", process.execPath, join(import.meta.dir, "testdata/network-probe.ts"), "20"],
      {
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
    expect(await p.exited, err).toBe(0);
    const r = JSON.parse(out.trim().split("\n").at(-1)!) as {
      sensor: { sensor: string; reason: string | null; connects: number };
      events: { type: string; proto: string; remote: string; rport: number; uid: number }[];
      ports: number[];
      uid: number;
      tableWhileRunning: boolean;
      tableAfterStop: boolean;
      secondGroup: number;
    };
    expect(r.sensor.sensor, r.sensor.reason ?? "").toBe("nflog");
    expect(r.events.length).toBe(20);
    expect(r.events.every((e) => e.type === "network.connect" && e.uid === r.uid)).toBe(true);
    const [v4, v6] = r.ports;
    expect(
      r.events.filter((e) => e.proto === "tcp" && e.remote === "127.0.0.1" && e.rport === v4).length,
    ).toBe(10);
    expect(r.events.filter((e) => e.proto === "tcp6" && e.remote === "::1" && e.rport === v6).length).toBe(
      10,
    );
    expect(r.tableWhileRunning).toBe(true);
    expect(r.secondGroup).toBe(3472);
    expect(r.tableAfterStop).toBe(false);
  }, 30_000);
});

describe("without the kernel source", () => {
  test("the rule only logs outgoing SYNs (never drops) to the configured group", () => {
    const s = nflogScript(77);
    expect(s).toContain("tcp flags & (syn | ack) == syn log group 77");
    expect(s).toContain("hook output");
    expect(s).not.toMatch(/\bdrop\b|\breject\b|\bqueue\b/);
  });

  test("nft missing: the sensor is off, says why, and leaves nothing behind", async () => {
    const calls: string[] = [];
    const s = new NetworkSensor({
      mode: "auto",
      group: 3471,
      publish: () => {},
      run: (cmd, stdin) => {
        calls.push(`${cmd.join(" ")}: ${stdin ?? ""}`);
        return { code: 127, stderr: "nft: not found" };
      },
    });
    s.start();
    // Without root the netlink bind fails first; with root, nft does. Either way: off, with a reason.
    expect(s.sensor).toBe("off");
    expect(s.reason).toMatch(/nfnetlink_log unavailable \(.+\); Behavior polls \/proc\/net\/tcp/);
    await s.stop();
  });

  test("off by configuration: no socket, no rule", () => {
    const s = new NetworkSensor({
      mode: "off",
      group: 3471,
      publish: () => {},
      run: () => {
        throw new Error("must not run nft");
      },
    });
    s.start();
    expect(s.sensor).toBe("off");
    expect(s.status()).toMatchObject({ sensor: "off", reason: "sensors.network is off", connects: 0 });
  });
});
