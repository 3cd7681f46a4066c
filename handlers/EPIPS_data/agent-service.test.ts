/**
 * The IPS follows the effective configuration (agent-service.ts) with a
 * fake packet filter and queue: policy enables it (rules installed),
 * changes its ports (rules re-installed), a change whose rules cannot be
 * installed is refused and the previous rules come back, the `ips` flag
 * withholds it — even against `agent ips enable` — and disabling removes
 * the rules. netns.test.ts and ips-policy.test.ts drive the kernel.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventBus } from "../../core/agent/events.ts";
import { type AgentConfig, parseConfig } from "../../core/config.ts";
import type { GateRow } from "../../core/effective/gates.ts";
import { HealthBoard } from "../../core/health/reasons.ts";
import { QueueRules, type Runner } from "../../core/sensors/nfqueue/rules.ts";
import { ipsService } from "./agent-service.ts";
import type { IpsAgent, QueueLike } from "./service.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-ips-follow-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const config = (ips: Record<string, unknown>) =>
  parseConfig({
    stateDir: join(dir, "state"),
    ips: {
      mode: "prevent",
      ...ips,
      // No NTP_OVERRIDES here; slow timers: nothing but the test moves the service.
      selfDisable: { checkIntervalMs: 60_000 },
      modules: { procModules: join(dir, "none"), sysModule: join(dir, "none"), pollMs: 3_600_000 },
    },
  });

test("policy turns the IPS on, moves its ports, is refused when rules fail, is withheld by the flag, turns it off", async () => {
  let current: AgentConfig = config({ enabled: false });
  let gate: { allowed: boolean; withheld: boolean } = { allowed: true, withheld: false };
  const subs = new Set<() => void>();
  const effective = {
    current: () => current,
    subscribe: (_p: string[], fn: () => void) => {
      subs.add(fn);
      return () => subs.delete(fn);
    },
    allows: () => gate.allowed,
    gates: () => [{ flag: "ips", withheld: gate.withheld } as GateRow],
    followers: new Map(),
  };
  const change = (next: AgentConfig, nextGate = gate) => {
    current = next;
    gate = nextGate;
    for (const fn of subs) fn();
  };
  const scripts: string[] = [];
  const ran: string[] = [];
  const run: Runner = (cmd, stdin) => {
    ran.push(cmd.join(" "));
    if (stdin && cmd[0] === "nft") scripts.push(stdin);
    // The kernel refuses anything that mentions port 9999 (nft and the iptables fallbacks alike).
    const refused = (stdin ?? cmd.join(" ")).includes("9999");
    return { code: refused ? 1 : 0, stdout: "", stderr: refused ? "Error: refused" : "" };
  };
  const queues: { closed: boolean }[] = [];
  const openQueue = (): QueueLike => {
    const q = { closed: false };
    queues.push(q);
    return {
      counters: { received: 0, accepted: 0, dropped: 0, overruns: 0, verdictErrors: 0 },
      verdict: () => {},
      close: async () => {
        q.closed = true;
      },
    };
  };
  const health = new HealthBoard();
  const events = new EventBus();
  const seen: { type: string; [k: string]: unknown }[] = [];
  events.subscribe((e) => seen.push(e));
  const api = {
    call: async () => ({}),
    contentOf: (type: string) =>
      type === "EPIPS_data"
        ? { type, version: 1, handlerState: "loaded" }
        : { type, version: null, handlerState: "not-installed" },
    hosts: () => [],
    events,
    health,
    alert: () => {},
    effective,
  } as unknown as IpsAgent & { effective: typeof effective };
  const svc = ipsService({ config: current, api }, { rules: new QueueRules(run), openQueue });
  await svc.start();
  expect(svc.service.status()).toMatchObject({ phase: "off", reason: "disabled in config (ips.enabled)" });
  expect(queues).toHaveLength(0);

  // Policy: on, outbound TCP 8080.
  change(config({ enabled: true, ports: { outbound: { tcp: [8080] } } }));
  await svc.settled();
  expect(svc.service.status()).toMatchObject({ phase: "active", backend: "nft" });
  expect(scripts.at(-1)).toContain("tcp dport 8080 queue num 7 bypass");

  // Policy: the port moves. The queue is re-bound and the rules re-installed with the new port.
  change(config({ enabled: true, ports: { outbound: { tcp: [8443] } } }));
  await svc.settled();
  expect(queues.map((q) => q.closed)).toEqual([true, false]);
  expect(scripts.at(-1)).toContain("tcp dport 8443");
  expect(scripts.at(-1)).not.toContain("8080");
  expect(seen.filter((e) => e.type === "config-applied").at(-1)).toMatchObject({
    service: "ips",
    keys: ["ips.ports.outbound.tcp"],
  });

  // Policy asks for a port the packet filter refuses: refused, the 8443 rules are back in force.
  change(config({ enabled: true, ports: { outbound: { tcp: [9999] } } }));
  await svc.settled();
  expect(svc.service.status()).toMatchObject({ phase: "active" });
  expect(scripts.at(-1)).toContain("tcp dport 8443");
  expect(health.get("config:ips", "POL_NOT_APPLIED")?.message).toContain("IPS_RULES_FAILED");
  expect(health.get("ips", "IPS_START_FAILED")).toBeUndefined();
  expect(seen.filter((e) => e.type === "config-apply-failed").at(-1)).toMatchObject({
    service: "ips",
    code: "POL_SETTINGS_NOT_STARTED",
    restored: true,
  });

  // The ips flag goes off (the effective config's ips.enabled is gated to false): off, rules gone.
  const wanted = config({ enabled: true, ports: { outbound: { tcp: [8443] } } });
  change({ ...wanted, ips: { ...wanted.ips, enabled: false } }, { allowed: false, withheld: true });
  await svc.settled();
  expect(svc.service.status()).toMatchObject({ phase: "off", withheldByFlag: true });
  expect(svc.service.status().reason).toContain("withheld by flag ips");
  expect(ran.at(-1)).toBe("nft delete table inet outpost_ips");
  expect(health.get("config:ips", "POL_NOT_APPLIED")).toBeUndefined();
  // The administrator's switch does not get past the flag.
  expect((await svc.service.enable()).phase).toBe("off");

  // The flag comes back: on again with the policy's ports.
  change(wanted, { allowed: true, withheld: false });
  await svc.settled();
  expect(svc.service.status()).toMatchObject({ phase: "active", withheldByFlag: false });

  // The administrator's `enable` above is remembered and wins over config, as before; `disable` ends it.
  expect(svc.service.status().admin).toBe("enabled");
  await svc.service.disable();
  expect(svc.service.status().phase).toBe("off");
  await svc.stop();
  expect(queues.every((q) => q.closed)).toBe(true);
});
