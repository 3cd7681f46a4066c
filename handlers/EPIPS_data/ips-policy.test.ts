/**
 * The IPS follows tenant policy and the `ips` flag against the kernel:
 * `agent run` (as root) in a network namespace of its own, a server in a
 * second one, and the fleet's bundle in the repository. Policy enables
 * the IPS in prevent mode (queue rules installed, a matching request
 * dropped); the flag off withholds it (rules removed, traffic passes);
 * policy switches to detect (rules re-installed, the request only
 * alerts) and disables it (rules gone) — each on the agent's next update
 * cycle, without a restart.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "../../core/control/client.ts";
import { ruleFile, supplementFile, tenantPolicy } from "../../test/fixtures/policy.ts";
import { makeVendor, TEST_GROUP, type Vendor } from "../../test/fixtures/vendor.ts";
import { canUseNetns, createNetnsPair, type NetnsPair, startServers, waitFor } from "./netns.ts";
import type { IpsStatus } from "./service.ts";

const AGENT = join(import.meta.dir, "../../bin/agent.ts");
const TCP_PORT = 8080;
const UDP_PORT = 5353;
const TENANT = "acme";
const RULES = `drop tcp any any -> any ${TCP_PORT} (msg:"test: EVIL request"; flow:to_server,established; content:"EVIL"; sid:1000001; rev:1;)`;
const policy = (enabled: boolean, mode: string) =>
  `<?xml version="1.0"?>\n<policy>\n  <ips enabled="${enabled}" mode="${mode}"/>\n</policy>\n`;

describe.skipIf(!canUseNetns())("IPS follows tenant policy and the ips flag (network namespaces)", () => {
  let net: NetnsPair;
  let vendor: Vendor;
  let fleet: ReturnType<typeof tenantPolicy>;
  let server: ReturnType<typeof Bun.spawn>;
  let dir: string;
  let stateDir: string;
  let configFile: string;
  let agentProc: ReturnType<typeof Bun.spawn> | undefined;
  let client: ControlClient;

  const ips = () => client.request("GET", "/v1/ips/stats") as Promise<IpsStatus>;
  /** The fleet changes something; the running agent's next cycle (asked for now) applies it. */
  const cycle = async (change: () => Promise<unknown>, until: (s: IpsStatus) => boolean) => {
    await change();
    await client.update();
    return waitFor(
      "the IPS to follow",
      async () => {
        const x = await ips();
        return until(x) ? x : null;
      },
      30_000,
    );
  };
  const send = (payload: string, timeoutMs = 5000) =>
    net.client<{ ok: boolean; reply: string }>(["tcp", net.addrA, TCP_PORT, payload, timeoutMs]);
  const rulesPresent = () =>
    Bun.spawnSync(["ip", "netns", "exec", net.b, "nft", "list", "table", "inet", "outpost_ips"], {
      stdout: "ignore",
      stderr: "ignore",
    }).exitCode === 0 ||
    Bun.spawnSync(["ip", "netns", "exec", net.b, "iptables", "-w", "-t", "mangle", "-S", "OUTPOST_IPS_OUT"], {
      stdout: "ignore",
      stderr: "ignore",
    }).exitCode === 0;

  beforeAll(async () => {
    net = createNetnsPair();
    vendor = await makeVendor();
    fleet = tenantPolicy(vendor, TENANT);
    dir = mkdtempSync(join(tmpdir(), "outpost-ips-policy-"));
    stateDir = join(dir, "state");
    server = await startServers(net, TCP_PORT, UDP_PORT);
    await vendor.release("EPIPS_data", 1, { "test.rules": RULES });
    await vendor.release("RemapperRules", 1, {
      "ips.json": ruleFile("tp.xml", [
        { id: "ips-on", select: "/policy/ips/@enabled", convert: { fn: "bool" }, target: "ips.enabled" },
        {
          id: "ips-mode",
          select: "/policy/ips/@mode",
          convert: { fn: "enum", map: { detect: "detect", prevent: "prevent" } },
          target: "ips.mode",
        },
      ]),
    });
    await vendor.release("Flags", 1, { "flags.json": supplementFile({ ips: "available" }) });
    await fleet.setDocument("tp.xml", policy(false, "prevent"));
    await fleet.setFlags({ ips: "on" });
    configFile = join(dir, "agent.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        stateDir,
        fleet: { tenant: TENANT },
        update: { repo: vendor.repo, group: TEST_GROUP, trust: vendor.trustPath, intervalSeconds: 3600 },
        // agent.json leaves the IPS off; only tenant policy turns it on.
        ips: {
          queue: 7,
          ports: { outbound: { tcp: [TCP_PORT], udp: [] } },
          verdictTimeoutMs: 300,
          selfDisable: { checkIntervalMs: 200, verdictP99Ms: 5000, hostCrashes: 5 },
        },
      }),
    );
    agentProc = net.spawn(net.b, [process.execPath, AGENT, "run", "--config", configFile]);
    client = await waitFor("the agent's control plane", () => ControlClient.fromStateDir(stateDir), 30_000);
    await client.update();
  }, 120_000);

  afterAll(async () => {
    if (agentProc) {
      agentProc.kill("SIGTERM");
      const exited = await Promise.race([agentProc.exited, Bun.sleep(20_000).then(() => "timeout")]);
      if (exited === "timeout") agentProc.kill("SIGKILL");
    }
    server?.kill("SIGKILL");
    net?.cleanup();
    vendor?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("policy on → rules installed, EVIL dropped; flag off → withheld, rules gone; detect; policy off", async () => {
    expect(await ips()).toMatchObject({ phase: "off", reason: "disabled in config (ips.enabled)" });
    expect(rulesPresent()).toBe(false);

    let s = await cycle(
      () => fleet.setDocument("tp.xml", policy(true, "prevent")),
      (x) => x.phase === "active",
    );
    expect(s).toMatchObject({ mode: "prevent", configEnabled: true });
    expect(rulesPresent()).toBe(true);
    expect(await send("hello")).toMatchObject({ ok: true, reply: "OK:hello" });
    expect((await send("GET /EVIL HTTP/1.0", 1500)).ok).toBe(false);

    s = await cycle(
      () => fleet.setFlags({ ips: "off" }),
      (x) => x.phase === "off",
    );
    expect(s).toMatchObject({ withheldByFlag: true });
    expect(s.reason).toContain("withheld by flag ips");
    expect(rulesPresent()).toBe(false);
    expect((await send("GET /EVIL while withheld")).ok).toBe(true);

    s = await cycle(
      async () => {
        await fleet.setFlags({ ips: "on" });
        await fleet.setDocument("tp.xml", policy(true, "detect"));
      },
      (x) => x.phase === "active",
    );
    expect(s.mode).toBe("detect");
    expect(rulesPresent()).toBe(true);
    expect((await send("GET /EVIL in detect mode")).ok).toBe(true);
    await waitFor("a detect-mode detection", async () =>
      (await ips()).counters.detections > 0 ? true : null,
    );

    s = await cycle(
      () => fleet.setDocument("tp.xml", policy(false, "detect")),
      (x) => x.phase === "off",
    );
    expect(s.reason).toBe("disabled in config (ips.enabled)");
    expect(rulesPresent()).toBe(false);
    const status = (await client.status()) as { effective?: { services?: Record<string, unknown> } };
    expect(status.effective?.services?.ips).toMatchObject({ rejected: null });
  }, 180_000);
});
