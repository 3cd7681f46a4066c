/** etc_hosts, arp_cache (against ip neigh) and iptables (parser, and iptables-legacy in a private netns). */
import { afterAll, describe, expect, test } from "bun:test";
import { genArpCache, genEtcHosts, parseIptablesRule } from "./network.ts";
import { ctxFor, fixtureRoot, has, tool } from "./testutil.ts";

const fx = fixtureRoot({
  "etc/hosts":
    "127.0.0.1\tlocalhost\n# comment\n\n::1 localhost ip6-localhost   # trailing\n10.0.0.5 db db.internal\n",
  "proc/net/arp":
    "IP address       HW type     Flags       HW address            Mask     Device\n10.0.0.1         0x1         0x2         52:54:00:12:34:56     *        eth0\n10.0.0.9         0x1         0x6         52:54:00:00:00:09     *        eth0\n",
});
afterAll(fx.cleanup);

describe("etc_hosts", () => {
  test("address and space-joined hostnames; comments and blank lines dropped", () => {
    expect(genEtcHosts(ctxFor(fx.root))).toEqual([
      { address: "127.0.0.1", hostnames: "localhost" },
      { address: "::1", hostnames: "localhost ip6-localhost" },
      { address: "10.0.0.5", hostnames: "db db.internal" },
    ]);
  });
});

describe("arp_cache", () => {
  test("permanent from the ATF_PERM flag", () => {
    expect(
      genArpCache(ctxFor(fx.root)).map((r) => `${r.address} ${r.mac} ${r.interface} ${r.permanent}`),
    ).toEqual(["10.0.0.1 52:54:00:12:34:56 eth0 0", "10.0.0.9 52:54:00:00:00:09 eth0 1"]);
  });

  test("the host's IPv4 neighbours with a link-layer address, as ip neigh shows them", () => {
    const neigh = tool(["ip", "-4", "neigh", "show"])
      .split("\n")
      .map((l) => /^(\S+) dev (\S+) lladdr (\S+)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]} ${m[3]} ${m[2]}`);
    const ours = genArpCache(ctxFor())
      .filter((r) => r.mac !== "00:00:00:00:00:00")
      .map((r) => `${r.address} ${r.mac} ${r.interface}`);
    expect(ours.sort()).toEqual(neigh.sort());
  });
});

describe("iptables", () => {
  test("iptables-save -c rule lines into osquery's columns", () => {
    expect(
      parseIptablesRule(
        "filter",
        "DROP",
        "[12:3456] -A INPUT -s 10.1.0.0/16 -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT",
      ),
    ).toMatchObject({
      filter_name: "filter",
      chain: "INPUT",
      policy: "DROP",
      target: "ACCEPT",
      protocol: 6,
      src_ip: "10.1.0.0",
      src_mask: "255.255.0.0",
      dst_ip: "0.0.0.0",
      iniface: "eth0",
      outiface: "all",
      dst_port: "22",
      match: "tcp",
      packets: 12,
      bytes: 3456,
    });
    expect(parseIptablesRule("filter", "", ":INPUT ACCEPT [0:0]")).toBeUndefined();
  });

  test(
    "a rule added with iptables-legacy in a private network namespace is a row",
    () => {
      if (!has("iptables-legacy") || !has("unshare")) return;
      const script = [
        "iptables-legacy -A INPUT -p udp --dport 5353 -j DROP",
        `exec ${process.execPath} -e 'const { genIptables } = await import(${JSON.stringify(`${import.meta.dir}/network.ts`)}); console.log(JSON.stringify(genIptables({ wants: () => true, paths: [], directories: [], likes: [], warn: (m) => console.error(m), root: "" })))'`,
      ].join(" && ");
      const rows = JSON.parse(tool(["unshare", "-n", "bash", "-c", script])) as Record<string, unknown>[];
      expect(rows).toContainEqual(
        expect.objectContaining({
          filter_name: "filter",
          chain: "INPUT",
          policy: "ACCEPT",
          target: "DROP",
          protocol: 17,
          dst_port: "5353",
        }),
      );
    },
    { timeout: 20_000 },
  );
});
