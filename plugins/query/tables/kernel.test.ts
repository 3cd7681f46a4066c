/** kernel_modules against lsmod (where the kernel has modules) and a fixture; system_controls against sysctl(8). */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { genKernelModules, genSystemControls } from "./kernel.ts";
import { ctxFor, fixtureRoot, has, tool } from "./testutil.ts";

const fx = fixtureRoot({
  "proc/modules":
    "nf_tables 372736 2 nft_chain_nat,nft_compat, Live 0xffffffffc0a00000\nloop 36864 0 - Live 0x0000000000000000\n",
  "proc/sys/net/ipv4/ip_forward": "1\n",
  "proc/sys/kernel/ostype": "Linux\n",
  "proc/sys/kernel/printk": "4\t4\t1\t7\n",
  "etc/sysctl.conf": "# comment\nnet.ipv4.ip_forward = 1\n",
  "etc/sysctl.d/10-k.conf": "kernel/ostype=Linux\n",
});
afterAll(fx.cleanup);

describe("kernel_modules", () => {
  test("columns as /proc/modules writes them", () => {
    expect(genKernelModules(ctxFor(fx.root))).toEqual([
      {
        name: "nf_tables",
        size: 372736,
        used_by: "nft_chain_nat,nft_compat,",
        status: "Live",
        address: "0xffffffffc0a00000",
      },
      { name: "loop", size: 36864, used_by: "-", status: "Live", address: "0x0000000000000000" },
    ]);
  });

  test("matches lsmod on this machine (no /proc/modules: no rows, no error)", () => {
    const rows = genKernelModules(ctxFor());
    if (!existsSync("/proc/modules")) {
      expect(rows).toEqual([]);
      return;
    }
    if (!has("lsmod")) return;
    const lsmod = tool(["lsmod"])
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s+/).slice(0, 2).join(" "));
    expect(rows.map((r) => `${r.name} ${r.size}`).sort()).toEqual(lsmod.sort());
  });
});

describe("system_controls", () => {
  test("dotted names, subsystem, current and configured values", () => {
    const rows = genSystemControls(ctxFor(fx.root));
    expect(rows.find((r) => r.name === "net.ipv4.ip_forward")).toMatchObject({
      subsystem: "net",
      current_value: "1",
      config_value: "1",
      oid: "",
    });
    expect(rows.find((r) => r.name === "kernel.ostype")?.config_value).toBe("Linux");
    expect(rows.find((r) => r.name === "kernel.printk")?.current_value).toBe("4 4 1 7");
  });

  test("the same entries as sysctl -a, with the same values for stable ones", () => {
    const ours = new Map(genSystemControls(ctxFor()).map((r) => [r.name, r.current_value]));
    const theirs = new Map<string, string>();
    for (const line of tool(["sysctl", "-a"]).split("\n")) {
      const i = line.indexOf(" = ");
      if (i >= 0)
        theirs.set(
          line.slice(0, i),
          line
            .slice(i + 3)
            .replace(/\s+/g, " ")
            .trim(),
        );
    }
    expect([...theirs.keys()].filter((k) => !ours.has(k))).toEqual([]);
    expect(theirs.size).toBeGreaterThan(100);
    for (const k of [
      "kernel.ostype",
      "kernel.osrelease",
      "kernel.hostname",
      "net.ipv4.ip_forward",
      "vm.overcommit_memory",
      "kernel.pid_max",
    ]) {
      if (theirs.has(k)) expect(`${k}=${ours.get(k)}`).toBe(`${k}=${theirs.get(k)}`);
    }
  });
});
