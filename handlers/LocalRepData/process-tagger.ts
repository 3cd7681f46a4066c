/**
 * Tags processes with reputation as they launch. Runs in the supervisor —
 * it must open /proc/PID/exe, which the scanner group cannot — and asks
 * LocalRepData (in the scanner) over the handler API. Linux offers no
 * unprivileged process-creation notification that Bun can consume (the
 * netlink proc connector needs CAP_NET_ADMIN and a raw socket), so new PIDs
 * are found by polling /proc; a process that lives shorter than the poll
 * interval can be missed, which docs/scanning.md states.
 *
 * The executable is hashed through /proc/PID/exe (the file the process runs,
 * even if it was deleted or replaced since), and the digest is cached by
 * device + inode + mtime + size, so each binary is read once however many
 * processes run it. A PID is re-tagged when its start time changes (reuse).
 *
 * Each tag also says which of the agent's exclusions cover the process
 * (`excluded`: the scopes, judged by executable path, name and image
 * SHA-256 — docs/exclusions.md), taken from the current matcher whenever a
 * tag is read, so a changed exclusion set shows at once. Linux executables
 * carry no Authenticode signature, so no signer is known for a process and
 * `signer` exclusions cannot match one here.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ExclusionMatcher } from "../../core/exclusions/matcher.ts";
import { EXCLUSION_SCOPES, type ExclusionScope } from "../../core/exclusions-config.ts";
import { log } from "../../core/log.ts";
import type { RepAnswer } from "./index.ts";

const logger = log.child({ component: "process-tagger" });

export type CallHandler = (type: string, method: string, args: unknown) => Promise<unknown>;

export interface ProcessTag {
  pid: number;
  exe: string;
  sha256: string | null;
  /** Reputation from LocalRepData; null when the hash is not listed (or no data is installed). */
  reputation: Pick<RepAnswer, "score" | "band" | "class" | "source"> | null;
  /** Kernel start time of the process, in clock ticks since boot (distinguishes PID reuse). */
  startTicks: number;
  taggedAt: string;
  error?: string;
  /** Scopes in which an exclusion covers this process (absent when none does). */
  excluded?: ExclusionScope[];
}

export interface TaggerOptions {
  call: CallHandler;
  pollIntervalMs?: number;
  procRoot?: string;
  /** Executables larger than this are not hashed (tagged without reputation). */
  maxHashBytes?: number;
  /** Bytes hashed per sweep at most (the rest wait for the next sweep). */
  hashBytesPerSweep?: number;
  emit?: (type: string, fields: Record<string, unknown>) => void;
  now?: () => Date;
  /** The agent's exclusions (core/exclusions), consulted when a tag is read. */
  exclusions?: () => ExclusionMatcher;
}

export class ProcessTagger {
  private readonly tags = new Map<number, ProcessTag>();
  private readonly digests = new Map<string, string>();
  private readonly reputations = new Map<string, ProcessTag["reputation"]>();
  private timer?: ReturnType<typeof setInterval>;
  private sweeping?: Promise<number>;
  private readonly proc: string;
  private readonly now: () => Date;
  readonly stats = { sweeps: 0, tagged: 0, hashed: 0, cacheHits: 0 };
  private readonly hashedPaths = new Map<string, number>();

  constructor(private readonly o: TaggerOptions) {
    this.proc = o.procRoot ?? "/proc";
    this.now = o.now ?? (() => new Date());
  }

  start(): void {
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), this.o.pollIntervalMs ?? 250);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  /**
   * Tags from kernel exec events (core/sensors, the process connector): the
   * event already carries the executable's SHA-256, hashed through an fd the
   * sensor opened at exec, so short-lived processes are tagged too. Replaces
   * the /proc sweep; start() is then not called.
   */
  async ingest(events: Record<string, unknown>[]): Promise<number> {
    const fresh: ProcessTag[] = [];
    for (const e of events) {
      if (typeof e.pid !== "number") continue;
      fresh.push({
        pid: e.pid,
        exe: typeof e.exe === "string" ? e.exe : "",
        sha256: typeof e.sha256 === "string" ? e.sha256 : null,
        startTicks: typeof e.startTicks === "number" ? e.startTicks : 0,
        taggedAt: this.now().toISOString(),
        reputation: null,
      });
    }
    await this.attachReputation(fresh);
    if (this.tags.size > 65_536) this.tags.clear();
    this.record(fresh);
    return fresh.length;
  }

  /** Forgets a process that exited (kernel exit events). */
  forget(pid: number): void {
    this.tags.delete(pid);
  }

  /** New reputation data: look every running executable up again. */
  invalidate(): void {
    this.reputations.clear();
    this.tags.clear();
  }

  /** How often the executable at `path` was read and hashed (the cache should make it once). */
  timesHashed(path: string): number {
    return this.hashedPaths.get(path) ?? 0;
  }

  list(): ProcessTag[] {
    return [...this.tags.values()].sort((a, b) => a.pid - b.pid).map((t) => this.withExclusions(t));
  }

  get(pid: number): ProcessTag | undefined {
    const t = this.tags.get(pid);
    return t && this.withExclusions(t);
  }

  /** The tag with the scopes the current exclusions cover it in. */
  private withExclusions(t: ProcessTag): ProcessTag {
    const matcher = this.o.exclusions?.();
    if (!matcher || matcher.size === 0) return t;
    const subject = {
      ...(t.exe ? { exe: t.exe, name: basename(t.exe) } : {}),
      ...(t.sha256 ? { sha256: t.sha256 } : {}),
    };
    const excluded = EXCLUSION_SCOPES.filter((scope) => matcher.process(scope, subject));
    return excluded.length > 0 ? { ...t, excluded } : t;
  }

  /** One pass over /proc; resolves to the number of processes tagged in it. */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private startTicks(pid: number): number | null {
    try {
      const stat = readFileSync(join(this.proc, String(pid), "stat"), "utf8");
      // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return Number(fields[19]);
    } catch {
      return null;
    }
  }

  private async sweepOnce(): Promise<number> {
    this.stats.sweeps++;
    const live = new Set<number>();
    const fresh: ProcessTag[] = [];
    // Hashing is bounded per sweep so a host full of new binaries is worked through over a few
    // sweeps rather than in one long stall; untagged processes are simply seen again next time.
    const budget = { bytes: this.o.hashBytesPerSweep ?? 256 * 1024 * 1024 };
    for (const name of readdirSync(this.proc)) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      live.add(pid);
      const ticks = this.startTicks(pid);
      if (ticks === null) continue;
      const known = this.tags.get(pid);
      if (known && known.startTicks === ticks) continue;
      const tag = await this.identify(pid, ticks, budget);
      if (tag) fresh.push(tag);
    }
    for (const pid of this.tags.keys()) if (!live.has(pid)) this.tags.delete(pid);
    await this.attachReputation(fresh);
    this.record(fresh);
    return fresh.length;
  }

  private record(fresh: ProcessTag[]): void {
    for (const t of fresh) {
      this.tags.set(t.pid, t);
      this.stats.tagged++;
      const excluded = this.withExclusions(t).excluded;
      if (t.reputation || excluded) {
        this.o.emit?.("process-tagged", {
          pid: t.pid,
          exe: t.exe,
          sha256: t.sha256,
          ...(t.reputation ? { band: t.reputation.band, score: t.reputation.score } : {}),
          ...(excluded ? { excluded } : {}),
        });
      }
    }
  }

  private async identify(pid: number, ticks: number, budget: { bytes: number }): Promise<ProcessTag | null> {
    const exeLink = join(this.proc, String(pid), "exe");
    let exe: string;
    try {
      exe = readlinkSync(exeLink);
    } catch {
      return null; // Kernel threads have no executable; vanished processes neither.
    }
    const base = { pid, exe, startTicks: ticks, taggedAt: this.now().toISOString(), reputation: null };
    try {
      const st = statSync(exeLink);
      const key = `${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
      let sha256 = this.digests.get(key);
      if (sha256) this.stats.cacheHits++;
      else {
        if (st.size > (this.o.maxHashBytes ?? 512 * 1024 * 1024))
          return { ...base, sha256: null, error: "executable too large to hash" };
        if (st.size > budget.bytes) return null;
        budget.bytes -= st.size;
        sha256 = await hashFile(exeLink);
        this.stats.hashed++;
        this.hashedPaths.set(exe, (this.hashedPaths.get(exe) ?? 0) + 1);
        this.digests.set(key, sha256);
        if (this.digests.size > 50_000) {
          this.digests.clear();
          this.hashedPaths.clear();
        }
      }
      return { ...base, sha256 };
    } catch (e) {
      return { ...base, sha256: null, error: (e as Error).message };
    }
  }

  private async attachReputation(tags: ProcessTag[]): Promise<void> {
    const missing = [
      ...new Set(tags.map((t) => t.sha256).filter((h): h is string => !!h && !this.reputations.has(h))),
    ];
    if (missing.length) {
      try {
        const answers = (await this.o.call("LocalRepData", "lookupMany", {
          items: missing.map((sha256) => ({ sha256 })),
        })) as RepAnswer[];
        answers.forEach((a, i) => {
          this.reputations.set(
            missing[i]!,
            a.source ? { score: a.score, band: a.band, class: a.class, source: a.source } : null,
          );
        });
      } catch (e) {
        // No LocalRepData loaded: tags carry no reputation until content arrives (invalidate()).
        logger.debug("reputation lookup unavailable", { error: (e as Error).message });
      }
    }
    for (const t of tags) if (t.sha256) t.reputation = this.reputations.get(t.sha256) ?? null;
  }
}

/** Reads in 1 MiB steps, yielding between them, so the supervisor keeps answering while it hashes. */
async function hashFile(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}
