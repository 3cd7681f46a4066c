/**
 * Software updates through the content channel. A content type that
 * contributes "agent.software" (handlers/AgentSoftware) arrives like any
 * content: signed, released to staged groups, verified by the update client
 * and proven by its handler. This service, on the supervisor side, then
 * switches the machine to it with the A/B slots (slots.ts):
 *
 *   - on a live host (root "/", systemd is PID 1) the switch runs outside
 *     this service's cgroup (`systemd-run … <this slot's agent>
 *     software-switch FILE`), because the probe restarts outpost.service and
 *     with it this process; the transient unit restores the old slot if the
 *     new agent does not answer its control plane in time;
 *   - elsewhere (an image, a test root) the switch runs here, with the
 *     `version --json` probe, and the new build runs from the next start.
 *
 * A build that fails its probe is marked bad twice over: its hash in the
 * slot record (never staged again) and its content version in the store
 * (never installed again; the fleet's heartbeat carries it as a bad
 * version, which aborts the release). The rollback raises a health reason
 * that stays until acknowledged, and sends an alert. At start, an
 * interrupted switch past its deadline is undone (boot-time recovery).
 */
import { chmodSync, existsSync, mkdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Alert } from "../agent/alerts.ts";
import type { ContentView } from "../handler/contract.ts";
import type { HealthBoard } from "../health/reasons.ts";
import type { Logger } from "../log.ts";
import type { SoftwareConfig } from "../software-config.ts";
import { inRoot, LAYOUT } from "./layout.ts";
import {
  currentSlot,
  type Probe,
  readRecord,
  recover,
  type SoftwareRecord,
  type SwitchOutcome,
  switchSoftware,
  versionProbe,
} from "./slots.ts";
import { systemdIsPid1 } from "./systemd.ts";

/** The executable's path inside a software package (handlers/AgentSoftware/format.ts). */
export const SOFTWARE_EXECUTABLE = "agent";
const SOURCE = "software";

export interface SoftwareServiceOptions {
  config: SoftwareConfig;
  stateDir: string;
  health: HealthBoard;
  log: Logger;
  alert(a: Omit<Alert, "at" | "host" | "agentVersion" | "group">): void;
  emit(type: string, fields?: Record<string, unknown>): void;
  /** Marks a content version bad in the store (never installed again). */
  markBad(type: string, version: number, reason: string): void;
  /** Tests: the probe for a non-live switch (default: the new executable answers `version --json`). */
  probe?: (root: string) => Probe;
  /** Tests: whether this is a live systemd host (default: root "/" and systemd is PID 1). */
  live?: () => boolean;
}

export interface SoftwareStatus {
  enabled: boolean;
  root: string;
  /** The executable this process runs from. */
  running: string;
  /** The slot `current` names, and the other one. */
  currentSlot: string | null;
  otherSlot: string | null;
  /** True when `current` names a slot this process does not run from: the next start runs it. */
  restartPending: boolean;
  last: SoftwareRecord | null;
  lastContent: { type: string; version: number } | null;
}

/** The real file this process runs (through `current`, the slot it was started from). */
function runningExecutable(): string {
  try {
    return readlinkSync("/proc/self/exe");
  } catch {
    return process.execPath;
  }
}

export class SoftwareService {
  private lastContent: { type: string; version: number } | null = null;
  private problem: string | null = null;

  constructor(private readonly opts: SoftwareServiceOptions) {}

  private get root(): string {
    return this.opts.config.root;
  }

  private installed(): boolean {
    return existsSync(inRoot(this.root, LAYOUT.current));
  }

  /** At start: undo a switch that was interrupted and is past its deadline. */
  atStart(now = new Date()): SoftwareRecord | null {
    if (!this.opts.config.enabled || !this.installed()) return null;
    try {
      const r = recover(this.root, now);
      if (r) this.rolledBack(r.reason ?? "interrupted switch restored", r.to);
      return r;
    } catch (e) {
      this.problem = (e as Error).message;
      this.opts.log.warn("software recovery failed", { error: this.problem });
      return null;
    }
  }

  /** After an update cycle installed a software package (type contributes "agent.software"). */
  async apply(view: ContentView): Promise<SwitchOutcome | { skipped: string }> {
    this.lastContent = { type: view.type, version: view.version };
    if (!this.opts.config.enabled) return this.skip("software updates are disabled (software.enabled)");
    if (!this.installed())
      return this.skip(`${inRoot(this.root, LAYOUT.current)} is missing: not an installed agent`);
    const binary = view.read(SOFTWARE_EXECUTABLE);
    this.opts.emit("software-switch-started", { contentType: view.type, version: view.version });
    if (this.live()) return this.handOff(view, binary);
    let out: SwitchOutcome;
    try {
      out = await switchSoftware(this.root, binary, {
        deadlineMs: this.opts.config.deadlineSeconds * 1000,
        probe: (this.opts.probe ?? versionProbe)(this.root),
      });
    } catch (e) {
      const reason = (e as Error).message;
      this.problem = reason;
      this.opts.markBad(view.type, view.version, reason);
      this.opts.emit("software-switch-refused", { contentType: view.type, version: view.version, reason });
      return { skipped: reason };
    }
    this.problem = null;
    if (out.ok) {
      this.opts.health.clear(SOURCE, "SOFTWARE_ROLLED_BACK");
      this.opts.emit("software-switched", {
        contentType: view.type,
        version: view.version,
        from: out.from,
        to: out.to,
        ms: out.ms,
      });
    } else {
      this.opts.markBad(view.type, view.version, out.reason ?? "unhealthy");
      this.rolledBack(out.reason ?? "unhealthy", out.to, view);
    }
    return out;
  }

  private skip(reason: string): { skipped: string } {
    this.opts.log.info("software content installed, not switched", { reason });
    return { skipped: reason };
  }

  private live(): boolean {
    return this.opts.live ? this.opts.live() : this.root === "/" && systemdIsPid1();
  }

  /**
   * Live host: the switch restarts this service, so it runs in a transient unit from the
   * executable this process runs (the old build), which restores it if the new one fails.
   */
  private handOff(view: ContentView, binary: Uint8Array): { skipped: string } {
    const dir = join(this.opts.stateDir, "software");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `agent-v${view.version}`);
    writeFileSync(file, binary, { mode: 0o700 });
    chmodSync(file, 0o700);
    const r = Bun.spawnSync(
      [
        "systemd-run",
        `--unit=outpost-software-switch-v${view.version}`,
        "--collect",
        runningExecutable(),
        "software-switch",
        file,
        "--deadline-seconds",
        String(this.opts.config.deadlineSeconds),
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (r.exitCode !== 0) {
      const reason = `systemd-run failed: ${r.stderr.toString().trim()}`;
      this.problem = reason;
      return { skipped: reason };
    }
    return { skipped: "handed to outpost-software-switch (this service restarts into the new build)" };
  }

  private rolledBack(reason: string, slot: string, view?: ContentView): void {
    const what = view ? `${view.type} v${view.version}` : `the build in ${slot}`;
    const message = `${what} was not healthy (${reason}); the previous agent was restored`;
    this.opts.health.raise(SOURCE, "amber", "SOFTWARE_ROLLED_BACK", message, { ack: true });
    this.opts.alert({
      kind: "software-rolled-back",
      code: "SOFTWARE_ROLLED_BACK",
      reason: message,
      ...(view ? { type: view.type } : {}),
    });
    this.opts.emit("software-rolled-back", { slot, reason, ...(view ? { version: view.version } : {}) });
  }

  status(): SoftwareStatus & { problem?: string } {
    let cur: string | null = null;
    let last: SoftwareRecord | null = null;
    try {
      if (this.installed()) cur = currentSlot(this.root);
      last = readRecord(this.root);
    } catch (e) {
      this.problem = (e as Error).message;
    }
    const running = runningExecutable();
    const runningSlot = /\/(slot-[ab])\/[^/]+$/.exec(running)?.[1] ?? null;
    return {
      enabled: this.opts.config.enabled,
      root: this.root,
      running,
      currentSlot: cur,
      otherSlot: cur === null ? null : cur === "slot-a" ? "slot-b" : "slot-a",
      restartPending: cur !== null && runningSlot !== null && runningSlot !== cur,
      last,
      lastContent: this.lastContent,
      ...(this.problem ? { problem: this.problem } : {}),
    };
  }
}
