/**
 * Crash supervision of host processes (docs/handler-host.md, "Supervision";
 * the rules S1–S4 are listed in manager.ts): what an exit means, restarts
 * with exponential backoff, and the crash-loop decision — roll back the
 * content activated within the window, or keep restarting slower when there
 * is nothing to blame.
 */
import type { CrashInfo } from "../agent/api.ts";
import { describeError } from "../errors.ts";
import type { ContentView } from "../handler/contract.ts";
import { crashesTotal, restartsTotal, rssBytes } from "./host-metrics.ts";
import type { HostExit, HostProcess } from "./process.ts";
import type { GroupRec, ManagerContext } from "./records.ts";

export class CrashSupervisor {
  constructor(private readonly ctx: ManagerContext) {}

  onExit(g: GroupRec, proc: HostProcess, exit: HostExit): void {
    if (g.proc !== proc) return;
    const during = [...g.ops.values()];
    g.proc = undefined;
    g.ready = undefined;
    g.staged.clear();
    rssBytes.set({ group: g.name }, 0);
    if (this.ctx.stopping() || exit.reason === "shutdown") {
      this.ctx.setState(g, "stopped");
      return;
    }
    const candidate = during.some((o) => o.candidate);
    const crash: CrashInfo = {
      at: new Date(this.ctx.now()).toISOString(),
      pid: proc.pid,
      reason: exit.reason,
      detail: exit.detail,
      code: exit.code,
      signal: exit.signal,
      during: during.map((o) => o.what).join(", ") || "idle",
      stderrTail: exit.stderrTail,
    };
    if (g.startedAt && this.ctx.now() - g.startedAt > this.ctx.opts.config.stableAfterSeconds * 1000) {
      g.backoffMs = this.ctx.opts.config.restartBackoffMs;
    }
    this.recordCrash(g, crash, candidate);
  }

  /** S2/S3: records a crash, then restarts with backoff or handles the crash loop. */
  recordCrash(g: GroupRec, crash: CrashInfo, candidate = false): void {
    g.lastCrash = crash;
    crashesTotal.inc({ group: g.name, reason: crash.reason });
    if (!candidate) g.crashTimes.push(this.ctx.now());
    const inWindow = this.pruneCrashes(g);
    this.ctx.opts.log.error("host crashed", {
      group: g.name,
      ...crash,
      blamedOnCandidate: candidate,
      inWindow,
    });
    this.ctx.opts.emit("host-crashed", {
      group: g.name,
      pid: crash.pid,
      reason: crash.reason,
      detail: crash.detail,
      code: crash.code,
      signal: crash.signal,
      during: crash.during,
      crashesInWindow: inWindow,
    });
    if (![...this.ctx.slots.values()].some((s) => s.host === g.name && s.desired)) {
      // Nothing to serve: start again on demand (S2 — the candidate that crashed it was refused).
      this.ctx.setState(g, "stopped");
      return;
    }
    if (inWindow >= this.ctx.opts.config.crashLoop.crashes) {
      void this.crashLoop(g, inWindow);
      return;
    }
    if (inWindow < this.ctx.opts.config.crashLoop.crashes - 1) g.loopReported = false;
    this.scheduleRestart(g);
  }

  pruneCrashes(g: GroupRec): number {
    const since = this.ctx.now() - this.ctx.opts.config.crashLoop.windowSeconds * 1000;
    g.crashTimes = g.crashTimes.filter((t) => t >= since);
    return g.crashTimes.length;
  }

  private scheduleRestart(g: GroupRec): void {
    if (this.ctx.stopping() || g.restartTimer) return;
    if (g.state !== "crash-looping") this.ctx.setState(g, "restarting");
    const delay = g.backoffMs;
    g.backoffMs = Math.min(this.ctx.opts.config.maxBackoffMs, Math.max(1, delay * 2));
    g.restartTimer = setTimeout(() => {
      g.restartTimer = undefined;
      if (this.ctx.stopping()) return;
      g.restarts += 1;
      restartsTotal.inc({ group: g.name });
      void this.ctx.start(g).catch(() => {});
    }, delay);
  }

  /** S3. */
  private async crashLoop(g: GroupRec, crashes: number): Promise<void> {
    const window = this.ctx.opts.config.crashLoop.windowSeconds * 1000;
    const recent = [...this.ctx.slots.values()]
      .filter((s) => s.host === g.name && s.desired && s.desired.activatedAt >= this.ctx.now() - window)
      .sort((a, b) => b.desired!.activatedAt - a.desired!.activatedAt);
    const culprit = recent[0];
    this.ctx.setState(g, "crash-looping");
    if (!g.loopReported || culprit) {
      this.ctx.opts.emit("crash-loop", {
        group: g.name,
        crashes,
        windowSeconds: this.ctx.opts.config.crashLoop.windowSeconds,
        contentType: culprit?.type ?? null,
        version: culprit?.desired?.version ?? null,
        lastCrash: g.lastCrash?.detail ?? null,
      });
    }
    if (!culprit) {
      if (!g.loopReported) {
        g.loopReported = true;
        this.ctx.opts.onCrashLoop?.({ group: g.name, crashes, detail: g.lastCrash?.detail ?? "" });
      }
      this.scheduleRestart(g);
      return;
    }
    const d = culprit.desired!;
    const detail = `host ${g.name} crashed ${crashes} times within ${this.ctx.opts.config.crashLoop.windowSeconds} s after ${culprit.type} v${d.version} was activated (last: ${g.lastCrash?.detail ?? "?"})`;
    let replacement: ContentView | null = null;
    try {
      replacement = await this.ctx.opts.onContentFailure({
        type: culprit.type,
        group: g.name,
        version: d.version,
        reason: "crash-loop",
        code: "HND_HOST_CRASH_LOOP",
        detail,
      });
    } catch (e) {
      this.ctx.opts.log.error("crash-loop rollback failed", { type: culprit.type, ...describeError(e) });
    }
    if (replacement && replacement.version !== d.version) {
      culprit.desired = { view: replacement, version: replacement.version, activatedAt: 0 };
      culprit.version = replacement.version;
    } else {
      culprit.desired = undefined;
      culprit.state = "failed";
      culprit.version = null;
      culprit.error = { code: "HND_HOST_CRASH_LOOP", message: detail };
    }
    // The rolled-back content gets a fresh count and a prompt restart.
    g.crashTimes = [];
    g.loopReported = false;
    g.backoffMs = this.ctx.opts.config.restartBackoffMs;
    if ([...this.ctx.slots.values()].some((s) => s.host === g.name && s.desired)) {
      this.ctx.setState(g, "restarting");
      this.scheduleRestart(g);
    } else {
      this.ctx.setState(g, "stopped");
    }
  }
}
