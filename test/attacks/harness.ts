/**
 * The shape every attack test shares: a vendor, an agent with good content
 * already live, one attack, one update cycle, and the same verdict checks —
 * the specific code, naming the file, nothing new in the store, the previous
 * content still serving, an alert sent and the error visible in status.
 */
import { expect } from "bun:test";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { UpdateCycleReport } from "../../core/agent/api.ts";
import type { AgentConfigInput } from "../../core/config.ts";
import type { Transport } from "../../core/update/transport.ts";
import {
  liveText,
  makeVendor,
  startAgent,
  TEST_GROUP,
  type TestAgent,
  type Vendor,
} from "../fixtures/vendor.ts";

export const TYPE = "TestText";
export const GROUP = TEST_GROUP;

export interface Scene {
  vendor: Vendor;
  t: TestAgent;
  /** What is live before the attack and must still be live after it. */
  live: { version: number; text: string };
  /** Releases `version` honestly and installs it; it becomes the content the attack must not disturb. */
  upgrade(version: number, text: string): Promise<void>;
  /** Installed version directories of TestText (the attack must add none). */
  versionDirs(): string[];
  cleanup(): Promise<void>;
}

export interface SceneOptions {
  /** Repository the agent reads (default the vendor's folder); a function gets the vendor, e.g. to start a server. */
  repo?: (vendor: Vendor) => string | Promise<string>;
  config?: AgentConfigInput;
  transport?: (vendor: Vendor) => Transport;
  now?: () => Date;
  /**
   * Run TestText in a host process, as a deployed agent does. Off by default: every attack in
   * signature, index, package, json and transport is refused before a handler sees the content,
   * so a host (a process start per scene, a third of those files' CPU) adds nothing they check;
   * host processes are covered by test/host/. rollback.test.ts, where handler loads decide, asks.
   */
  hostProcesses?: boolean;
}

/** A vendor with TestText v1 published and an agent that has installed it. */
export async function installGood(opts: SceneOptions = {}): Promise<Scene> {
  const vendor = await makeVendor();
  await vendor.release(TYPE, 1, { "data.txt": "good v1" });
  const t = await startAgent(vendor, {
    repo: opts.repo ? await opts.repo(vendor) : undefined,
    config: {
      ...opts.config,
      hosts: { isolation: opts.hostProcesses ? "process" : "in-process", ...opts.config?.hosts },
    },
    transport: opts.transport?.(vendor),
    now: opts.now,
  });
  const scene: Scene = {
    vendor,
    t,
    live: { version: 1, text: "good v1" },
    async upgrade(version, text) {
      await vendor.release(TYPE, version, { "data.txt": text });
      const r = await t.agent.update();
      expect(r.installed).toEqual([{ type: TYPE, version, previousVersion: scene.live.version }]);
      scene.live = { version, text };
    },
    versionDirs: () => readdirSync(join(t.stateDir, "content", TYPE, "versions")).sort(),
    async cleanup() {
      await t.stop();
      rmSync(t.stateDir, { recursive: true, force: true });
      vendor.cleanup();
    },
  };
  const first = await t.agent.update();
  expect(first.installed).toEqual([{ type: TYPE, version: 1, previousVersion: null }]);
  expect(await liveText(t.agent)).toBe("good v1");
  return scene;
}

export interface Expected {
  code: string;
  /** A substring the rejection's `file` must contain (the package path, the index path…). */
  file: string;
  /** The content type the rejection concerns; undefined for index-level rejections. */
  type?: string;
}

/**
 * Runs one update cycle under attack and checks the full verdict: exactly one
 * rejection with the expected code naming the file, nothing installed or
 * staged, the previous content still live, an alert with the same code, and
 * the code first in status().lastErrors.
 */
export async function expectRejected(scene: Scene, want: Expected): Promise<UpdateCycleReport> {
  const { agent } = scene.t;
  const dirsBefore = scene.versionDirs();
  const alertsBefore = scene.t.alerts.alerts.length;
  const report = await agent.update();

  expect(report.rejected.map((r) => r.code)).toEqual([want.code]);
  const rejection = report.rejected[0]!;
  expect(rejection.file).toContain(want.file);
  expect(rejection.type).toBe(want.type);
  expect(rejection.reason.length).toBeGreaterThan(0);
  expect(report.ok).toBe(false);
  expect(report.installed).toEqual([]);

  // Previous content untouched: same handler object serving the same text, same version, nothing new on disk.
  expect(await liveText(agent)).toBe(scene.live.text);
  const info = agent.content().find((c) => c.type === TYPE);
  expect(info?.version).toBe(scene.live.version);
  expect(info?.handlerState).toBe("loaded");
  expect(scene.versionDirs()).toEqual(dirsBefore);

  const alerts = scene.t.alerts.alerts.slice(alertsBefore);
  expect(alerts.map((a) => [a.kind, a.code])).toEqual([["update-rejected", want.code]]);
  expect(alerts[0]?.file).toBe(rejection.file);
  const status = agent.status();
  expect(status.lastErrors[0]?.code).toBe(want.code);
  expect(status.lastErrors[0]?.file).toBe(rejection.file);
  expect(status.health).not.toBe("green");
  return report;
}
