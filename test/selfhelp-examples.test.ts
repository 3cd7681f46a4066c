/**
 * The example self-help rules (examples/ESH, KBA-1001 … KBA-1005), each
 * raised by the condition its article describes, and none by a healthy
 * agent. KBA-1001 (repository down) is proven in handlers/ESH/selfhelp.test.ts
 * and KBA-1002's log line in core/update/trust-expiry.test.ts; here:
 *
 *   KBA-1003  a handler host really crashing (test/host/handlers.ts's Crashy,
 *             aborted three times in its own process): the supervisor's
 *             "host crashed" lines in the agent's log file
 *   KBA-1004  the agent's clock two days behind the vendor's: the next update
 *             is rejected on its signatures, in the agent's log file
 *   KBA-1005  systemd-timesyncd timing out in the journal, read through a
 *             stand-in journalctl that prints `-o json` records (no test may
 *             write the host's real journal, and the rule's file:/var/log/syslog is
 *             kept out by selfHelp.allowedDirs so this machine's own log cannot count)
 *
 * The esh host runs in its own process (`hosts.isolation: "process"`), as
 * under `agent run`. Waits are on conditions with deadlines, never sleeps.
 */
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { AgentEvent } from "../core/agent/events.ts";
import type { AgentConfigInput } from "../core/config.ts";
import type { ContentHandler } from "../core/handler/contract.ts";
import { log } from "../core/log.ts";
import { AGENT_LOG, attachLogFiles, logDir } from "../core/logs/files.ts";
import { eshHandler } from "../handlers/ESH/index.ts";
import { SelfHelpService } from "../handlers/ESH/service.ts";
import { builtinGroups } from "../handlers/groups.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "./fixtures/vendor.ts";
import { hostTestRegistry } from "./host/handlers.ts";

setDefaultTimeout(90_000);
const EXAMPLES = resolve(import.meta.dir, "../examples/ESH");
const DAY_MS = 86_400_000;

let vendor: Vendor;
let scratch: string;
let agents: TestAgent[] = [];
let detach: (() => void) | undefined;
let svc: SelfHelpService | undefined;

/** Crashy (a handler that crashes its host on demand) beside the real ESH handler. */
function registry() {
  const r = hostTestRegistry();
  for (const g of builtinGroups) if (g.name === "esh") r.registerGroup(g);
  return r.register(eshHandler as ContentHandler);
}

function examples(): Record<string, string> {
  return Object.fromEntries(
    readdirSync(EXAMPLES)
      .filter((f) => f.endsWith(".jsonl"))
      .map((f) => [f, readFileSync(join(EXAMPLES, f), "utf8")]),
  );
}

const FAST_HOSTS: AgentConfigInput["hosts"] = {
  isolation: "process",
  restartBackoffMs: 10,
  maxBackoffMs: 200,
  heartbeatSeconds: 0,
};

/** A stand-in journalctl: prints these records for the unit it is asked to follow, then stays open. */
function fakeJournalctl(records: { unit: string; message: string }[]): string {
  const path = join(scratch, "journalctl");
  const lines = records.map(
    (r) =>
      `echo '${JSON.stringify({ _SYSTEMD_UNIT: r.unit, SYSLOG_IDENTIFIER: "systemd-timesyncd", MESSAGE: r.message })}'`,
  );
  writeFileSync(path, `#!/bin/sh\n${lines.join("\n")}\nexec sleep 120\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Ticks the self-help service until `done` holds, or fails at the deadline. */
async function tickUntil(what: string, done: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    await svc!.tick();
    if (done()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; ${JSON.stringify(svc!.stats())}`);
    await Bun.sleep(20);
  }
}

const eshCodes = (t: TestAgent) =>
  t.agent.health
    .list()
    .filter((r) => r.source === "esh")
    .map((r) => r.code)
    .sort();

/** An agent with the examples installed, restarted on the same state with its log file and self-help attached. */
async function withExamples(opts: { now?: () => Date; journal?: string } = {}): Promise<TestAgent> {
  await vendor.release("ESH", 1, examples());
  const first = await startAgent(vendor, { registry, config: { hosts: FAST_HOSTS } });
  agents.push(first);
  expect((await first.agent.update()).installed.map((i) => i.type)).toEqual(["ESH"]);
  await first.stop();
  // allowedDirs: a scratch dir, so KBA-1005's file:/var/log/syslog (whatever this machine logs) is not read.
  const selfHelp = { quietSeconds: 600, journal: opts.journal !== undefined, allowedDirs: [scratch] };
  const t = await startAgent(vendor, {
    stateDir: first.stateDir,
    registry,
    now: opts.now,
    config: { hosts: FAST_HOSTS, selfHelp },
  });
  agents.push(t);
  detach = attachLogFiles(log, t.agent.config).detach;
  svc = new SelfHelpService({
    agent: t.agent,
    config: t.agent.config,
    now: opts.now,
    journalCommand: opts.journal ? [opts.journal] : undefined,
  });
  return t;
}

beforeEach(async () => {
  vendor = await makeVendor();
  scratch = mkdtempSync(join(tmpdir(), "outpost-esh-examples-"));
});
afterEach(async () => {
  await svc?.stop();
  detach?.();
  for (const t of agents.reverse()) {
    await t.stop();
    rmSync(t.stateDir, { recursive: true, force: true });
  }
  agents = [];
  svc = undefined;
  detach = undefined;
  rmSync(scratch, { recursive: true, force: true });
  vendor.cleanup();
});

test("KBA-1003: a handler host that keeps crashing", async () => {
  const t = await withExamples();
  await vendor.release("Crashy", 1, { "data.txt": "fine" });
  expect((await t.agent.update()).installed.map((i) => i.type)).toEqual(["Crashy"]);
  const crashes = () => t.agent.events.recent((e: AgentEvent) => e.type === "host-crashed").length;
  for (let i = 1; i <= 3; i++) {
    // The host aborts in the middle of the call; the call fails, the supervisor logs and restarts.
    await t.agent.call("Crashy", "abort", {}).catch(() => {});
    const deadline = Date.now() + 15_000;
    while (crashes() < i && Date.now() < deadline) await Bun.sleep(10);
    expect(crashes()).toBe(i);
  }
  const written = readFileSync(join(logDir(t.agent.config), AGENT_LOG), "utf8");
  expect(written.match(/"msg":"host crashed"/g)?.length).toBe(3);

  await tickUntil("KBA-1003", () => eshCodes(t).includes("KBA-1003"));
  expect(eshCodes(t)).toEqual(["KBA-1003"]);
  const reason = t.agent.health.get("esh", "KBA-1003");
  expect(reason?.level).toBe("info");
  expect(reason?.message).toStartWith(
    "self-help: KBA-1003 — A handler host process keeps crashing (memory limit, sandbox, or bad content) — https://kb.outpost.example/KBA-1003, first seen ",
  );
  expect(reason?.message).toContain("count 3");
  const listed = (await t.agent.call("ESH", "findings", {})) as { findings: { ruleId: string }[] };
  expect(listed.findings.map((f) => f.ruleId)).toEqual(["handler-host-crash-loop"]);
  // The esh host is a process of its own, not the supervisor.
  expect(t.agent.status().hosts?.find((h) => h.group === "esh")).toMatchObject({ state: "running" });
});

test("KBA-1004: the agent's clock is two days slow, so new content's signatures are not valid yet", async () => {
  const skewed = () => new Date(Date.now() - 2 * DAY_MS);
  const t = await withExamples({ now: skewed });
  // The vendor publishes, at the right time; the agent judges it by its own clock.
  await vendor.release("ESH", 2, examples());
  const report = await t.agent.update().catch((e) => ({ ok: false, rejected: [], error: e }));
  expect(report.ok).toBe(false);
  const written = readFileSync(join(logDir(t.agent.config), AGENT_LOG), "utf8");
  const codes = [...written.matchAll(/"msg":"update rejected".*?"code":"([A-Z_]+)"/g)].map((m) => m[1]);
  expect(codes.length).toBeGreaterThan(0);
  for (const code of codes) expect(["SIG_SIGNING_TIME_IN_FUTURE", "SIG_CERT_NOT_YET_VALID"]).toContain(code!);

  await tickUntil("KBA-1004", () => eshCodes(t).includes("KBA-1004"));
  expect(eshCodes(t)).toEqual(["KBA-1004"]);
  expect(t.agent.health.get("esh", "KBA-1004")?.message).toContain(
    "The system clock is wrong, so signed content looks expired or not yet valid: fix NTP",
  );
  // The same version stays installed: the finding explains the rejection, it does not cause one.
  expect(t.agent.content().find((c) => c.type === "ESH")?.version).toBe(1);
});

test("KBA-1005: systemd-timesyncd keeps timing out (journal)", async () => {
  const unit = "systemd-timesyncd.service";
  const journal = fakeJournalctl(
    Array.from({ length: 5 }, (_, i) => ({
      unit,
      message: `Timed out waiting for reply from 192.0.2.${i + 1}:123 (ntp.ubuntu.com).`,
    })),
  );
  const t = await withExamples({ journal });
  await tickUntil("KBA-1005", () => eshCodes(t).includes("KBA-1005"));
  expect(eshCodes(t)).toEqual(["KBA-1005"]);
  expect(t.agent.health.get("esh", "KBA-1005")?.message).toContain("count 5");
  expect(svc!.stats().sources).toContain(`journal:${unit}`);
  expect(svc!.stats().skipped).toEqual(["file:/var/log/syslog"]);
});

test("a healthy agent raises none of KBA-1001 … KBA-1005 from its log and a healthy journal", async () => {
  const unit = "systemd-timesyncd.service";
  const journal = fakeJournalctl([
    { unit, message: "Initial clock synchronization to Tue 2026-12-01 10:00:00.123456 UTC." },
    { unit, message: "Contacted time server 192.0.2.1:123 (ntp.ubuntu.com)." },
    { unit, message: "Network configuration changed, trying to establish connection." },
    { unit, message: "Contacted time server 192.0.2.2:123 (ntp.ubuntu.com)." },
  ]);
  const t = await withExamples({ journal });
  await vendor.release("Crashy", 1, { "data.txt": "fine" });
  // A working day in the agent's log: updates that succeed, hosts that start and answer.
  expect((await t.agent.update()).installed.map((i) => i.type)).toEqual(["Crashy"]);
  for (let i = 0; i < 3; i++) {
    expect((await t.agent.update()).ok).toBe(true);
    expect(await t.agent.call("Crashy", "read", {})).toMatchObject({ text: "fine" });
  }
  const logLines = () => svc!.stats().files.find((f) => f.path.endsWith(AGENT_LOG))?.lines ?? 0;
  // Done when both sources were read: the agent's log (a line per update at least) and all four journal lines.
  await tickUntil(
    "the agent's log and the journal read",
    () => logLines() >= 3 && svc!.stats().lines >= logLines() + 4,
  );
  expect(eshCodes(t)).toEqual([]);
  const listed = (await t.agent.call("ESH", "findings", {})) as { findings: unknown[] };
  expect(listed.findings).toEqual([]);
  expect(t.agent.events.recent((e) => e.type === "selfhelp-finding")).toEqual([]);
});
