/**
 * The packet-filter rules that send selected traffic to our NFQUEUE, kept
 * in a place of the agent's own so installing and removing them never
 * touches anyone else's rules:
 *
 *   nft backend       table `inet outpost_ips` (input + output chains)
 *   iptables backend  chain OUTPOST_IPS_IN / OUTPOST_IPS_OUT in the `mangle`
 *                     table of iptables and ip6tables, one jump each from
 *                     INPUT / OUTPUT
 *
 * nft is preferred. Kernels built without the nft `queue` expression
 * (CONFIG_NFT_QUEUE off, as on some cloud and micro-VM kernels) still have
 * the xtables NFQUEUE target, reached through iptables(-nft); the backend is
 * chosen by trying nft first and is shown in `agent ips status`.
 *
 * Every rule carries `bypass`: with no reader bound (agent stopped, crashed,
 * or the IPS disabled) the kernel accepts the packet. `remove()` is
 * idempotent and is run at start too, which is the crash recovery: rules a
 * crashed agent left behind are gone before new ones go in.
 */
import { IpsError } from "../../errors.ts";

export interface PortSet {
  tcp: number[];
  udp: number[];
}

export interface QueueRuleSpec {
  queue: number;
  /** Traffic to these local ports (INPUT). */
  inbound: PortSet;
  /** Traffic to these remote ports (OUTPUT). */
  outbound: PortSet;
}

export type Backend = "nft" | "iptables";

export const NFT_TABLE = "outpost_ips";
const IPT_CHAIN = { in: "OUTPOST_IPS_IN", out: "OUTPOST_IPS_OUT" } as const;

export type Runner = (cmd: string[], stdin?: string) => { code: number; stdout: string; stderr: string };

export const spawnRunner: Runner = (cmd, stdin) => {
  try {
    const r = Bun.spawnSync(cmd, {
      stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
      stdout: "pipe",
      stderr: "pipe",
    });
    return { code: r.exitCode ?? 1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  } catch (e) {
    return { code: 127, stdout: "", stderr: (e as Error).message };
  }
};

const portList = (ports: number[]) => (ports.length === 1 ? `${ports[0]}` : `{ ${ports.join(", ")} }`);

type Match = { proto: "tcp" | "udp"; field: "dport" | "sport"; ports: number[] };

/** What each hook queues: traffic to the configured ports and the replies of those flows. */
function matches(spec: QueueRuleSpec): { input: Match[]; output: Match[] } {
  const m = (set: PortSet, field: Match["field"]): Match[] =>
    (["tcp", "udp"] as const)
      .filter((p) => set[p].length)
      .map((proto) => ({ proto, field, ports: set[proto] }));
  return {
    input: [...m(spec.inbound, "dport"), ...m(spec.outbound, "sport")],
    output: [...m(spec.outbound, "dport"), ...m(spec.inbound, "sport")],
  };
}

/** The nft script for `spec` (pure: the unit tests read it). */
export function nftScript(spec: QueueRuleSpec): string {
  const q = `queue num ${spec.queue} bypass`;
  const { input, output } = matches(spec);
  const rule = (x: Match) => `    ${x.proto} ${x.field} ${portList(x.ports)} ${q}`;
  const lines = [
    `table inet ${NFT_TABLE} {`,
    "  chain input {",
    "    type filter hook input priority 0; policy accept;",
    ...input.map(rule),
    "  }",
    "  chain output {",
    "    type filter hook output priority 0; policy accept;",
    ...output.map(rule),
    "  }",
    "}",
  ];
  return `${lines.join("\n")}\n`;
}

/** iptables commands (without the binary name) that build our chains, for one address family. */
export function iptablesCommands(spec: QueueRuleSpec): string[][] {
  const cmds: string[][] = [];
  const target = ["-j", "NFQUEUE", "--queue-num", String(spec.queue), "--queue-bypass"];
  const { input, output } = matches(spec);
  for (const [dir, list, hook] of [
    ["in", input, "INPUT"],
    ["out", output, "OUTPUT"],
  ] as const) {
    const chain = IPT_CHAIN[dir];
    cmds.push(["-t", "mangle", "-N", chain]);
    for (const x of list) {
      // multiport takes at most 15 ports per rule.
      for (let i = 0; i < x.ports.length; i += 15) {
        const chunk = x.ports.slice(i, i + 15).join(",");
        const opt = x.field === "dport" ? "--dports" : "--sports";
        cmds.push(["-t", "mangle", "-A", chain, "-p", x.proto, "-m", "multiport", opt, chunk, ...target]);
      }
    }
    cmds.push(["-t", "mangle", "-A", hook, "-j", chain]);
  }
  return cmds;
}

/** iptables commands as one `iptables-restore --noflush` script for the mangle table. */
export function restoreScript(cmds: string[][]): string {
  const lines = ["*mangle"];
  for (const c of cmds) {
    const rest = c.slice(2); // drop "-t mangle"
    lines.push(rest[0] === "-N" ? `:${rest[1]} - [0:0]` : rest.join(" "));
  }
  lines.push("COMMIT", "");
  return lines.join("\n");
}

export class QueueRules {
  private installed?: Backend;

  constructor(private readonly run: Runner = spawnRunner) {}

  get backend(): Backend | undefined {
    return this.installed;
  }

  /** Removes leftovers, then installs. Throws IPS_RULES_FAILED naming both backends' errors. */
  install(spec: QueueRuleSpec): Backend {
    this.remove();
    const nft = this.run(["nft", "-f", "-"], nftScript(spec));
    if (nft.code === 0) {
      this.installed = "nft";
      return "nft";
    }
    this.remove();
    const errors: string[] = [`nft: ${nft.stderr.trim().split("\n")[0] ?? nft.code}`];
    // One iptables-restore per family (one spawn, atomic); single commands when restore is unavailable.
    const script = restoreScript(iptablesCommands(spec));
    if (
      ["iptables", "ip6tables"].every(
        (bin) => this.run([`${bin}-restore`, "-w", "--noflush"], script).code === 0,
      )
    ) {
      this.installed = "iptables";
      return "iptables";
    }
    this.remove();
    for (const bin of ["iptables", "ip6tables"]) {
      for (const cmd of iptablesCommands(spec)) {
        const r = this.run([bin, "-w", ...cmd]);
        if (r.code !== 0) {
          errors.push(`${bin} ${cmd.join(" ")}: ${r.stderr.trim() || r.code}`);
          this.remove();
          throw new IpsError("IPS_RULES_FAILED", `cannot install the queue rules: ${errors.join("; ")}`);
        }
      }
    }
    this.installed = "iptables";
    return "iptables";
  }

  /**
   * Removes our table and chains; silent when there is nothing to remove.
   * `only`: the backend known to be installed (one or two spawns instead of
   * ~17); without it every place is cleaned (start-up crash recovery).
   */
  remove(only?: Backend): void {
    if (only === "nft") {
      if (this.run(["nft", "delete", "table", "inet", NFT_TABLE]).code === 0) {
        this.installed = undefined;
        return;
      }
    } else if (only === "iptables") {
      const script = [
        "*mangle",
        `-D INPUT -j ${IPT_CHAIN.in}`,
        `-D OUTPUT -j ${IPT_CHAIN.out}`,
        `-F ${IPT_CHAIN.in}`,
        `-X ${IPT_CHAIN.in}`,
        `-F ${IPT_CHAIN.out}`,
        `-X ${IPT_CHAIN.out}`,
        "COMMIT",
        "",
      ].join("\n");
      if (
        ["iptables", "ip6tables"].every(
          (bin) => this.run([`${bin}-restore`, "-w", "--noflush"], script).code === 0,
        )
      ) {
        this.installed = undefined;
        return;
      }
    }
    this.run(["nft", "delete", "table", "inet", NFT_TABLE]);
    for (const bin of ["iptables", "ip6tables"]) {
      for (const [chain, hook] of [
        [IPT_CHAIN.in, "INPUT"],
        [IPT_CHAIN.out, "OUTPUT"],
      ] as const) {
        // Delete every jump (a crash between two installs could leave two).
        for (let i = 0; i < 8; i++) {
          if (this.run([bin, "-w", "-t", "mangle", "-D", hook, "-j", chain]).code !== 0) break;
        }
        this.run([bin, "-w", "-t", "mangle", "-F", chain]);
        this.run([bin, "-w", "-t", "mangle", "-X", chain]);
      }
    }
    this.installed = undefined;
  }

  /** True when any of our rules exist (status, tests). */
  present(): boolean {
    if (this.run(["nft", "list", "table", "inet", NFT_TABLE]).code === 0) return true;
    for (const bin of ["iptables", "ip6tables"]) {
      for (const chain of Object.values(IPT_CHAIN)) {
        if (this.run([bin, "-w", "-t", "mangle", "-S", chain]).code === 0) return true;
      }
    }
    return false;
  }
}
