/** The queue rules are generated for both directions of each configured flow, always with bypass. */
import { expect, test } from "bun:test";
import { iptablesCommands, nftScript, QueueRules, type Runner } from "./rules.ts";

const spec = { queue: 7, inbound: { tcp: [22], udp: [] }, outbound: { tcp: [80, 443], udp: [53] } };

test("nft: one table of our own, requests and replies of each configured port, bypass on every rule", () => {
  const s = nftScript(spec);
  expect(s).toContain("table inet outpost_ips {");
  expect(s).toContain("tcp dport 22 queue num 7 bypass"); // inbound request (input)
  expect(s).toContain("tcp sport { 80, 443 } queue num 7 bypass"); // outbound reply (input)
  expect(s).toContain("tcp dport { 80, 443 } queue num 7 bypass"); // outbound request (output)
  expect(s).toContain("udp dport 53 queue num 7 bypass");
  expect(s).toContain("tcp sport 22 queue num 7 bypass"); // inbound reply (output)
  for (const line of s.split("\n").filter((l) => l.includes("queue"))) expect(line).toContain("bypass");
});

test("iptables fallback: own chains, multiport in chunks of 15, --queue-bypass", () => {
  const many = {
    queue: 3,
    inbound: { tcp: [], udp: [] },
    outbound: { tcp: Array.from({ length: 20 }, (_, i) => 1000 + i), udp: [] },
  };
  const cmds = iptablesCommands(many).map((c) => c.join(" "));
  expect(cmds).toContain("-t mangle -N OUTPOST_IPS_OUT");
  expect(cmds.filter((c) => c.includes("--dports")).length).toBe(2);
  expect(cmds.every((c) => !c.includes("NFQUEUE") || c.includes("--queue-bypass"))).toBe(true);
  expect(cmds).toContain("-t mangle -A OUTPUT -j OUTPOST_IPS_OUT");
});

test("install falls back to iptables when nft refuses, and remove() clears both", () => {
  const log: string[] = [];
  const run: Runner = (cmd) => {
    log.push(cmd.join(" "));
    return {
      code: cmd[0] === "nft" && cmd[1] === "-f" ? 1 : 0,
      stdout: "",
      stderr: "Could not process rule",
    };
  };
  const r = new QueueRules(run);
  expect(r.install(spec)).toBe("iptables");
  expect(log.some((l) => l.startsWith("nft delete table inet outpost_ips"))).toBe(true);
  expect(log.some((l) => l.startsWith("ip6tables -w -t mangle -N OUTPOST_IPS_IN"))).toBe(true);
});
