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

test("install falls back to iptables-restore when nft refuses, then to single commands", () => {
  const log: string[] = [];
  let restoreWorks = true;
  const run: Runner = (cmd, stdin) => {
    log.push(`${cmd.join(" ")}${stdin ? ` <<${stdin}` : ""}`);
    const fails = (cmd[0] === "nft" && cmd[1] === "-f") || (!restoreWorks && cmd[0]!.endsWith("-restore"));
    return { code: fails ? 1 : 0, stdout: "", stderr: "Could not process rule" };
  };
  const r = new QueueRules(run);
  expect(r.install(spec)).toBe("iptables");
  expect(log.some((l) => l.startsWith("nft delete table inet outpost_ips"))).toBe(true);
  const restore = log.find((l) => l.startsWith("ip6tables-restore -w --noflush"));
  expect(restore).toContain(":OUTPOST_IPS_IN - [0:0]");
  expect(restore).toContain("-A OUTPUT -j OUTPOST_IPS_OUT");
  log.length = 0;
  r.remove("iptables");
  expect(log).toHaveLength(2); // one restore per family
  restoreWorks = false;
  log.length = 0;
  expect(r.install(spec)).toBe("iptables");
  expect(log.some((l) => l.startsWith("ip6tables -w -t mangle -N OUTPOST_IPS_IN"))).toBe(true);
});
