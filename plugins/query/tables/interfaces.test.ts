/**
 * interface_addresses against ip(8), and the same rows from inside an empty
 * network namespace (the query host's sandbox) as outside it.
 */
import { describe, expect, test } from "bun:test";
import { genInterfaceAddresses, interfaceAddressesFromProc, localV4 } from "./interfaces.ts";
import { ctxFor, has, tool } from "./testutil.ts";

const key = (r: Record<string, unknown>) => `${r.interface} ${r.address} ${r.mask} ${r.broadcast}`;

describe("interface_addresses", () => {
  test("from fib_trie, route and if_inet6 text", () => {
    const fibTrie =
      "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     |-- 10.1.2.3\n        /32 host LOCAL\nLocal:\n     |-- 10.1.2.3\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
    expect(localV4(fibTrie)).toEqual(["10.1.2.3", "127.0.0.1"]);
    const route =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t0000010A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
    const ifInet6 = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n";
    expect(interfaceAddressesFromProc({ fibTrie, route, ifInet6 }).map(key)).toEqual([
      "eth0 10.1.2.3 255.255.0.0 10.1.255.255",
      "lo 127.0.0.1 255.0.0.0 ",
      "eth0 fe80::fc:ff:fe00:1%eth0 ffff:ffff:ffff:ffff:: ",
    ]);
  });

  test("the addresses ip addr shows, with their prefix lengths", () => {
    const ip = tool(["ip", "-o", "addr", "show"])
      .split("\n")
      .map((l) => /^\d+:\s+(\S+)\s+inet6?\s+(\S+)\/(\d+)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]} ${m[2]!.startsWith("fe80:") ? `${m[2]}%${m[1]}` : m[2]} /${m[3]}`);
    const bits = (mask: string) =>
      mask.includes(":")
        ? mask
            .split(":")
            .reduce((n, g) => n + (g ? Number.parseInt(g, 16).toString(2).replace(/0/g, "").length : 0), 0)
        : mask.split(".").reduce((n, o) => n + Number(o).toString(2).replace(/0/g, "").length, 0);
    const ours = genInterfaceAddresses(ctxFor()).map(
      (r) => `${r.interface} ${r.address} /${bits(String(r.mask))}`,
    );
    expect(ours.sort()).toEqual(ip.sort());
  });

  test(
    "identical from an empty network namespace, as the sandboxed query host sees it",
    () => {
      if (!has("unshare")) return;
      const inside = tool([
        "unshare",
        "-n",
        process.execPath,
        "-e",
        `const { genInterfaceAddresses } = await import(${JSON.stringify(`${import.meta.dir}/interfaces.ts`)}); console.log(JSON.stringify(genInterfaceAddresses({ wants: () => true, paths: [], directories: [], likes: [], warn() {}, root: "" })))`,
      ]);
      const outside = genInterfaceAddresses(ctxFor());
      expect(outside.length).toBeGreaterThan(1);
      expect(JSON.parse(inside)).toEqual(outside);
    },
    { timeout: 20_000 },
  );
});
