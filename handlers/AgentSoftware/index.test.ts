/**
 * AgentSoftware end to end: a vendor signs and publishes the agent
 * executable like content; `agent update` installs it (handler loaded in the
 * `software` group), and the supervisor switches an installed agent's A/B
 * slots to it — keeping a healthy build, restoring the previous one when the
 * new build exits or crashes (version marked bad, health reason, alert), and
 * undoing an interrupted switch at start. The builds are real ELF
 * executables compiled here with cc.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { LAYOUT } from "../../core/install/layout.ts";
import { readRecord, softwareRecordPath } from "../../core/install/slots.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../test/fixtures/vendor.ts";
import { builtinGroups } from "../groups.ts";
import { agentSoftwareHandler } from "./index.ts";

// Host processes, cc and the probes: more than the default on a loaded machine.
setDefaultTimeout(60_000);

let work: string;
let vendor: Vendor;
const builds: Record<"good1" | "good2" | "exits" | "crashes", Uint8Array> = {} as never;

function cc(name: string, body: string): Uint8Array {
  const src = join(work, `${name}.c`);
  const out = join(work, name);
  writeFileSync(
    src,
    `#include <stdio.h>\n#include <stdlib.h>\n#include <signal.h>\nint main(int argc, char **argv) {\n${body}\n}\n`,
  );
  const r = Bun.spawnSync(["cc", "-O1", "-o", out, src], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`cc ${name}: ${r.stderr.toString()}`);
  return new Uint8Array(readFileSync(out));
}
const answers = (v: string) => `puts("{\\"name\\":\\"outpost-agent\\",\\"version\\":\\"${v}\\"}"); return 0;`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "outpost-software-"));
  builds.good1 = cc("good1", answers("1.0.0"));
  builds.good2 = cc("good2", answers("2.0.0"));
  builds.exits = cc("exits", 'fputs("cannot start\\n", stderr); return 1;');
  builds.crashes = cc("crashes", "raise(SIGSEGV); return 0;");
  vendor = await makeVendor();
});
afterAll(() => {
  vendor?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

const descriptor = (version: string) => JSON.stringify({ version, platform: "linux-x64" });

/** What `agent install` leaves: slot-a running build 1 behind `current`, an empty slot-b. */
function installedRoot(): string {
  const root = mkdtempSync(join(work, "root-"));
  for (const d of [LAYOUT.slotA, LAYOUT.slotB, LAYOUT.stateDir])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, LAYOUT.slotA, "agent"), builds.good1, { mode: 0o755 });
  symlinkSync("slot-a", join(root, LAYOUT.current));
  return root;
}

async function agentFor(root: string, group: string, software: { enabled?: boolean } = { enabled: true }) {
  return startAgent(vendor, {
    config: {
      software: { ...software, root, deadlineSeconds: 10 },
      update: { group } as never,
    },
    registry: () => {
      const r = new HandlerRegistry();
      for (const g of builtinGroups) r.registerGroup(g);
      return r.register(agentSoftwareHandler);
    },
  });
}

type SoftwareSection = {
  currentSlot: string;
  otherSlot: string;
  restartPending: boolean;
  last: { state: string; reason?: string; bad: string[] } | null;
  lastContent: { type: string; version: number } | null;
};
const software = (ta: TestAgent) => (ta.agent.status() as unknown as { software: SoftwareSection }).software;

describe("AgentSoftware through the signed channel", () => {
  test("a healthy build is installed as content, switched into the idle slot and kept", async () => {
    const root = installedRoot();
    await vendor.release(
      "AgentSoftware",
      1,
      { agent: builds.good2, "software.json": descriptor("2.0.0") },
      { group: "sw-good" },
    );
    const ta = await agentFor(root, "sw-good");
    try {
      const report = await ta.agent.update();
      expect(report.installed.map((i) => i.type)).toEqual(["AgentSoftware"]);
      expect(ta.agent.content().find((c) => c.type === "AgentSoftware")?.handlerState).toBe("loaded");
      const s = software(ta);
      expect(s).toMatchObject({ currentSlot: "slot-b", otherSlot: "slot-a", last: { state: "healthy" } });
      expect(s.lastContent).toEqual({ type: "AgentSoftware", version: 1 });
      expect(readFileSync(join(root, LAYOUT.slotB, "agent"))).toEqual(Buffer.from(builds.good2));
    } finally {
      await ta.stop();
    }
  });

  test.each([
    ["exits", "exited 1"],
    ["crashes", "SIGSEGV"],
  ] as const)(
    "a build that %s is rolled back, its version marked bad, with a health reason and an alert",
    async (kind, why) => {
      const root = installedRoot();
      const group = `sw-${kind}`;
      await vendor.release(
        "AgentSoftware",
        2,
        { agent: builds[kind], "software.json": descriptor("2.0.1") },
        { group },
      );
      const ta = await agentFor(root, group);
      try {
        await ta.agent.update();
        const s = software(ta);
        expect(s.currentSlot).toBe("slot-a");
        expect(s.last?.state).toBe("rolled-back");
        expect(s.last?.reason).toContain(why);
        expect(readFileSync(join(root, LAYOUT.binary))).toEqual(Buffer.from(builds.good1));
        const status = ta.agent.status();
        expect(status.healthDetails?.find((r) => r.code === "SOFTWARE_ROLLED_BACK")).toMatchObject({
          level: "amber",
        });
        expect(ta.alerts.alerts.map((a) => a.kind)).toContain("software-rolled-back");
        const info = ta.agent.content().find((c) => c.type === "AgentSoftware");
        expect(info?.badVersions).toContain(2);
        // The next cycle does not try the bad version again.
        const again = await ta.agent.update();
        expect(again.installed).toEqual([]);
      } finally {
        await ta.stop();
      }
    },
  );

  test("an interrupted switch past its deadline is undone when the agent starts", async () => {
    const root = installedRoot();
    writeFileSync(join(root, LAYOUT.slotB, "agent"), builds.crashes, { mode: 0o755 });
    rmSync(join(root, LAYOUT.current));
    symlinkSync("slot-b", join(root, LAYOUT.current));
    const past = new Date(Date.now() - 60_000).toISOString();
    writeFileSync(
      softwareRecordPath(root),
      JSON.stringify({
        state: "pending",
        from: "slot-a",
        to: "slot-b",
        sha256: "a".repeat(64),
        startedAt: past,
        deadlineAt: past,
        bad: [],
      }),
    );
    const ta = await agentFor(root, "sw-none");
    try {
      expect(readRecord(root)?.state).toBe("rolled-back");
      expect(software(ta).currentSlot).toBe("slot-a");
      expect(ta.agent.status().healthDetails?.map((r) => r.code)).toContain("SOFTWARE_ROLLED_BACK");
    } finally {
      await ta.stop();
    }
  });

  test("disabled (the default outside an installed agent): installed as content, nothing switched", async () => {
    const root = installedRoot();
    await vendor.release(
      "AgentSoftware",
      3,
      { agent: builds.good2, "software.json": descriptor("2.0.0") },
      { group: "sw-off" },
    );
    // Not set: the default (agent install writes `enabled: true`).
    const ta = await agentFor(root, "sw-off", {});
    try {
      await ta.agent.update();
      expect(ta.agent.content().find((c) => c.type === "AgentSoftware")?.handlerState).toBe("loaded");
      expect(software(ta)).toMatchObject({ enabled: false, currentSlot: "slot-a", last: null });
    } finally {
      await ta.stop();
    }
  });
});
