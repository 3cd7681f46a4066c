/**
 * One running host process, seen from the supervisor: the child, its IPC
 * channel, its stderr, and the watchdogs around it (RSS limit, heartbeat).
 * It knows nothing about content or restarts; it reports how the child
 * ended — and why, when a limit or the protocol ended it — to its owner.
 */
import type { Subprocess } from "bun";
import { HandlerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Channel, type Notification, type ProtocolProblem } from "./channel.ts";
import { CPU_GRACE_SECONDS, cgroupOomKills, joinCgroup, type ProcSample, sampleProc } from "./sandbox.ts";
import { type SharedTransfer, TRANSFER_ENV, TRANSFER_FD } from "./shared-transfer.ts";
import { HostWatchdog } from "./watchdog.ts";

export type ExitReason =
  | "exited"
  | "crashed"
  | "memory-limit"
  | "cpu-limit"
  | "protocol"
  | "unresponsive"
  | "killed"
  | "shutdown";

export interface HostExit {
  code: number | null;
  signal: string | null;
  reason: ExitReason;
  detail: string;
  stderrTail: string[];
}

export interface HostProcessOptions {
  group: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** Largest frame accepted from the child. */
  maxInboundBytes: number;
  /** Largest frame sent to the child (content files travel in one frame each). */
  maxOutboundBytes: number;
  memoryLimitBytes: number;
  cpuLimitSeconds: number;
  cgroupDir?: string;
  watchdogIntervalMs: number;
  /** Longest gap between samples of a quiet host (core/host/watchdog.ts); default 30 s. */
  watchdogIdleMaxMs?: number;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  log: Logger;
  onNotification(n: Notification): void;
  onRequest(method: string, args: unknown, ctx: { signal: AbortSignal }): Promise<unknown>;
  onProtocolError(p: ProtocolProblem): void;
  onSample?(s: ProcSample): void;
  onHeartbeat?(status: unknown): void;
  /** Called once when the child has ended, before its pending requests are failed (so the owner still sees them). */
  onExit?(exit: HostExit): void;
  /** A region the child inherits as fd 3 and maps read-only; request bytes leased from it go by reference. */
  transfer?: SharedTransfer;
}

const STDERR_TAIL = 20;
const STDERR_LINE_MAX = 1000;

export class HostProcess {
  readonly channel: Channel;
  readonly exited: Promise<HostExit>;
  readonly startedAt = Date.now();
  lastSample: ProcSample | null = null;
  private readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  private readonly tail: string[] = [];
  private killReason?: { reason: ExitReason; detail: string };
  readonly watchdog: HostWatchdog | undefined;
  private oomBefore = 0;
  private alive = true;

  constructor(private readonly opts: HostProcessOptions) {
    try {
      const t = opts.transfer;
      this.proc = Bun.spawn(opts.argv, {
        cwd: opts.cwd,
        env: t ? { ...opts.env, [TRANSFER_ENV]: `${TRANSFER_FD}:${t.size}` } : opts.env,
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
        // The region's fd becomes the child's fd 3 (dup2 clears close-on-exec for it alone).
        ...(t ? { stdio: ["pipe", "pipe", "pipe", t.fd] } : {}),
      }) as Subprocess<"pipe", "pipe", "pipe">;
    } catch (e) {
      throw new HandlerError("HND_HOST_SPAWN_FAILED", `host ${opts.group}: ${(e as Error).message}`, {
        file: opts.argv[0],
      });
    }
    const sink = this.proc.stdin;
    this.channel = new Channel({
      send: (frame) => {
        if (!this.alive) throw new Error("host has exited");
        if (!this.quietSend) this.watchdog?.poke();
        sink.write(frame);
        void Promise.resolve(sink.flush()).catch(() => {});
      },
      maxInbound: opts.maxInboundBytes,
      maxOutbound: opts.maxOutboundBytes,
      ...(opts.transfer ? { sharedOut: opts.transfer.buffer } : {}),
      onRequest: (m, a, ctx) => {
        this.watchdog?.poke();
        return opts.onRequest(m, a, ctx);
      },
      onNotification: (n) => {
        this.watchdog?.poke();
        opts.onNotification(n);
      },
      onProtocolError: (p) => {
        opts.onProtocolError(p);
        // Without framing we cannot tell answers from noise: end this process, a fresh one is clean.
        if (p.fatal) this.kill("protocol", `${p.kind}: ${p.message}`);
      },
    });
    if (opts.cgroupDir) {
      try {
        this.oomBefore = cgroupOomKills(opts.cgroupDir);
        joinCgroup(opts.cgroupDir, this.proc.pid);
      } catch (e) {
        opts.log.warn("could not move host into its cgroup; the RSS watchdog enforces memory", {
          group: opts.group,
          error: (e as Error).message,
        });
        opts.cgroupDir = undefined;
      }
    }
    void this.pumpStderr();
    const pumped = this.pump();
    // Answers the child wrote just before it died are still in the pipe: read them before failing requests.
    this.exited = this.proc.exited
      .then(() => Promise.race([pumped, new Promise((r) => setTimeout(r, 1000).unref?.())]))
      .then(() => this.finish());
    if (opts.watchdogIntervalMs > 0 || opts.heartbeatMs > 0) {
      const sampling = opts.watchdogIntervalMs > 0;
      const base = sampling ? opts.watchdogIntervalMs : opts.heartbeatMs;
      this.watchdog = new HostWatchdog({
        baseMs: base,
        maxIdleMs: Math.max(base, opts.watchdogIdleMaxMs ?? 30_000),
        heartbeatMs: opts.heartbeatMs,
        sampling,
        sample: () => this.sample(),
        onSample: (s) => this.watch(s),
        heartbeat: () => this.heartbeat(),
        inFlight: () => this.channel.inFlight,
      });
    }
  }

  /** Set while sending our own status/heartbeat frames, which are not activity of the host. */
  private quietSend = false;

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.alive;
  }

  get stderrTail(): string[] {
    return [...this.tail];
  }

  request(
    method: string,
    args: unknown,
    opts: { timeoutMs: number; signal?: AbortSignal; quiet?: boolean },
  ): Promise<unknown> {
    if (!opts.quiet) return this.channel.request(method, args, opts);
    // A status poll: not work for the host, so it must not keep the watchdog at its busy rate.
    this.quietSend = true;
    try {
      return this.channel.request(method, args, opts);
    } finally {
      this.quietSend = false;
    }
  }

  /** When a status answer last arrived (heartbeat or the manager's refresh). */
  lastStatusAt = 0;

  /** True when the host did nothing (no traffic, no CPU) since `since` (ms epoch). */
  quietSince(since: number): boolean {
    return this.watchdog !== undefined && this.watchdog.activityAt <= since;
  }

  /** Kills the child (SIGKILL) and records why; its exit is then reported with that reason. */
  kill(reason: ExitReason, detail: string): void {
    if (!this.alive) return;
    this.killReason ??= { reason, detail };
    this.proc.kill("SIGKILL");
  }

  /** Asks the host to unload and exit; kills it when it does not within `timeoutMs`. */
  async shutdown(timeoutMs: number): Promise<HostExit> {
    if (this.alive) {
      this.killReason ??= { reason: "shutdown", detail: "supervisor stopped the host" };
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), timeoutMs);
      try {
        await this.channel.request("shutdown", null, { timeoutMs });
      } catch {
        this.proc.kill("SIGKILL");
      }
      try {
        this.proc.stdin.end();
      } catch {
        // Already closed.
      }
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  sample(): ProcSample | null {
    if (!this.alive) return this.lastSample;
    const s = sampleProc(this.proc.pid);
    if (s) this.lastSample = s;
    return s;
  }

  private watch(s: ProcSample): void {
    this.opts.onSample?.(s);
    if (!this.opts.cgroupDir && s.rssBytes > this.opts.memoryLimitBytes) {
      this.kill(
        "memory-limit",
        `RSS ${mib(s.rssBytes)} MiB exceeds the group's ${mib(this.opts.memoryLimitBytes)} MiB limit`,
      );
    }
  }

  private async heartbeat(): Promise<boolean> {
    if (!this.alive || this.channel.inFlight > 0) return false;
    try {
      const status = await this.request("status", null, {
        timeoutMs: this.opts.heartbeatTimeoutMs,
        quiet: true,
      });
      this.lastStatusAt = Date.now();
      this.opts.onHeartbeat?.(status);
      return true;
    } catch (e) {
      if (this.alive && (e as { code?: string }).code === "HND_IPC_TIMEOUT") {
        this.kill("unresponsive", `no heartbeat answer within ${this.opts.heartbeatTimeoutMs} ms`);
      }
      return false;
    }
  }

  private async pump(): Promise<void> {
    try {
      for await (const chunk of this.proc.stdout) this.channel.feed(chunk);
    } catch {
      // The child went away mid-read; `exited` reports it.
    }
  }

  private async pumpStderr(): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    const line = (l: string) => {
      if (!l) return;
      const text = l.length > STDERR_LINE_MAX ? `${l.slice(0, STDERR_LINE_MAX)}…` : l;
      this.tail.push(text);
      if (this.tail.length > STDERR_TAIL) this.tail.shift();
      this.opts.log.debug("host stderr", { group: this.opts.group, pid: this.proc.pid, line: text });
    };
    try {
      for await (const chunk of this.proc.stderr) {
        partial += decoder.decode(chunk, { stream: true });
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        if (partial.length > 64 * 1024) {
          line(partial);
          partial = "";
        }
        for (const l of lines) line(l);
      }
    } catch {
      // Closed with the child.
    }
    line(partial);
  }

  private finish(): HostExit {
    this.alive = false;
    this.watchdog?.stop();
    const code = this.proc.exitCode;
    const signal = this.proc.signalCode ? String(this.proc.signalCode) : null;
    let reason: ExitReason;
    let detail: string;
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    if (this.killReason) {
      ({ reason, detail } = this.killReason);
    } else if (this.opts.cgroupDir && cgroupOomKills(this.opts.cgroupDir) > this.oomBefore) {
      reason = "memory-limit";
      detail = `the kernel OOM-killed the host at its cgroup memory.max (${mib(this.opts.memoryLimitBytes)} MiB)`;
    } else if (
      signal === "SIGXCPU" ||
      (signal === "SIGKILL" &&
        (this.lastSample?.cpuSeconds ?? 0) >= this.opts.cpuLimitSeconds - CPU_GRACE_SECONDS)
    ) {
      reason = "cpu-limit";
      detail = `CPU time limit of ${this.opts.cpuLimitSeconds} s reached (RLIMIT_CPU)`;
    } else {
      reason = code === 0 && !signal ? "exited" : "crashed";
      detail = how;
    }
    const exit: HostExit = {
      code,
      signal,
      reason,
      detail: detail === how ? how : `${detail} (${how})`,
      stderrTail: [...this.tail],
    };
    try {
      this.opts.onExit?.(exit);
    } catch (e) {
      this.opts.log.error("host exit handler failed", { group: this.opts.group, error: String(e) });
    }
    this.channel.close(
      new HandlerError("HND_HOST_CRASHED", `host ${this.opts.group}: ${exit.detail}`, {
        details: { group: this.opts.group, reason, code, signal },
      }),
    );
    return exit;
  }
}

const mib = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;
