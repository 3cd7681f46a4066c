/**
 * The supervisor's half of self-help. It asks the ESH handler which logs
 * its rules name, reads them — the agent's own log file, `file:` paths
 * under `selfHelp.allowedDirs` only, and (when `selfHelp.journal` is on) the
 * journal for `journal:` units — and streams new lines to the esh host
 * (`feed`). Findings come back and become:
 *  - a health reason at level "info" (`agent status`: "self-help: KBA-1234 — title — url, …"),
 *  - an event (`selfhelp-finding`, `selfhelp-cleared`),
 *  - an admin alert (kind `selfhelp-finding`),
 * and are cleared when the pattern has not matched for `selfHelp.quietSeconds`.
 */
import { resolve, sep } from "node:path";
import type { Agent } from "../../core/agent/runtime.ts";
import type { AgentConfig } from "../../core/config.ts";
import { describeError } from "../../core/errors.ts";
import { log as rootLog } from "../../core/log.ts";
import { AGENT_LOG, logDir } from "../../core/logs/files.ts";
import { ticker } from "../../core/ticker.ts";
import type { Finding } from "./engine.ts";
import type { FeedReply } from "./index.ts";
import { JournalReader } from "./journal.ts";
import { FileTailer } from "./tail.ts";

export type SelfHelpAgent = Pick<Agent, "call" | "health" | "events" | "notify">;

export interface SelfHelpOptions {
  agent: SelfHelpAgent;
  config: AgentConfig;
  now?: () => Date;
  journalCommand?: string[];
}

const MAX_LINES_PER_BATCH = 20_000;
const POLLS_PER_ROUND = 8;
const MAX_BYTES_PER_BATCH = 8 * 1024 * 1024;

/** Splits per-source line lists into messages of at most maxLines lines and about maxBytes (pure). */
export function chunkBatches(
  batches: readonly { source: string; lines: readonly string[] }[],
  maxLines: number,
  maxBytes: number,
): { source: string; lines: string[] }[][] {
  const chunks: { source: string; lines: string[] }[][] = [];
  let current: { source: string; lines: string[] }[] = [];
  let lines = 0;
  let bytes = 0;
  for (const b of batches) {
    let part: { source: string; lines: string[] } | undefined;
    for (const line of b.lines) {
      const size = line.length * 3 + 3; // worst case UTF-8 plus JSON quoting
      if (lines > 0 && (lines + 1 > maxLines || bytes + size > maxBytes)) {
        chunks.push(current);
        current = [];
        part = undefined;
        lines = 0;
        bytes = 0;
      }
      if (!part) {
        part = { source: b.source, lines: [] };
        current.push(part);
      }
      part.lines.push(line);
      lines++;
      bytes += size;
    }
  }
  if (current.length > 0 || chunks.length === 0) chunks.push(current);
  return chunks;
}
const SOURCES_REFRESH_MS = 30_000;
const REPEAT_RAISE_MS = 60_000;

export function findingMessage(f: Finding): string {
  return `self-help: ${f.kba.id} — ${f.kba.title} — ${f.kba.url}, first seen ${f.firstSeen}, last seen ${f.lastSeen}, count ${f.count}`;
}

/** Whether `path` is inside one of `dirs` (both absolute, normalised). Pure. */
export function underAllowedDir(path: string, dirs: readonly string[]): boolean {
  const p = resolve(path);
  return dirs.some((d) => {
    const base = resolve(d);
    return p.startsWith(base.endsWith(sep) ? base : base + sep);
  });
}

export class SelfHelpService {
  readonly name = "selfhelp";
  private readonly log = rootLog.child({ component: "selfhelp" });
  private readonly now: () => Date;
  private readonly tailers = new Map<string, FileTailer>();
  private journal?: JournalReader;
  private sources: string[] = [];
  private sourcesAt = 0;
  private skipped = new Set<string>();
  private stopTimer?: () => void;
  private ticking?: Promise<void>;
  private unsub?: () => void;
  private readonly raisedAt = new Map<string, number>();
  readonly counters = { ticks: 0, lines: 0, feeds: 0, opened: 0, cleared: 0, errors: 0 };
  /**
   * When the earliest open finding falls quiet (epoch ms): a round with no new lines only expires
   * findings, so it calls the ESH host only once one is due — not every poll. 0 until the first
   * reply has said which findings are open.
   */
  private nextExpiryMs = 0;
  lastError: string | null = null;

  constructor(private readonly opts: SelfHelpOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  start(): void {
    const c = this.opts.config.selfHelp;
    if (!c.enabled) return;
    this.unsub = this.opts.agent.events.subscribe((e) => {
      // New ESH content (or its host restarted with it): read its sources again, and feed it at the
      // next round to learn which findings it holds.
      if ((e as { contentType?: unknown }).contentType === "ESH") {
        this.sourcesAt = 0;
        this.nextExpiryMs = 0;
      }
    });
    // On the supervisor's shared ticker: the poll wakes the process together with its other jobs.
    this.stopTimer = ticker.every(c.pollMs, () => void this.tick());
  }

  /** One read → feed → report round (what the timer runs; tests call it directly). */
  tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.tickInner()
      .catch((e) => {
        const d = describeError(e);
        if (d.code === "HND_NOT_LOADED" || d.code === "HND_UNKNOWN_TYPE") {
          this.opts.agent.health.clearSource("esh");
          return;
        }
        this.counters.errors++;
        this.lastError = `${d.code}: ${d.message}`;
        this.log.warn("self-help round failed", d);
      })
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  private async refreshSources(): Promise<void> {
    const t = this.now().getTime();
    if (this.sourcesAt !== 0 && t - this.sourcesAt < SOURCES_REFRESH_MS) return;
    const r = (await this.opts.agent.call("ESH", "sources", {})) as { sources: string[] };
    this.sources = r.sources;
    this.sourcesAt = t;
    const c = this.opts.config.selfHelp;
    const wanted = new Set<string>();
    for (const s of this.sources) {
      const path = this.pathOf(s);
      if (path === null) continue;
      if (s.startsWith("file:") && !underAllowedDir(path, c.allowedDirs)) {
        if (!this.skipped.has(s))
          this.log.warn("self-help log outside selfHelp.allowedDirs; not read", {
            source: s,
            allowedDirs: c.allowedDirs,
          });
        this.skipped.add(s);
        continue;
      }
      wanted.add(path);
      if (!this.tailers.has(path)) this.tailers.set(path, new FileTailer(path));
    }
    for (const [path, t2] of this.tailers) {
      if (!wanted.has(path)) {
        t2.close();
        this.tailers.delete(path);
      }
    }
    const units = this.sources.filter((s) => s.startsWith("journal:")).map((s) => s.slice(8));
    if (c.journal && units.length > 0) {
      this.journal ??= new JournalReader(this.opts.journalCommand);
      this.journal.follow(units);
    } else this.journal?.follow([]);
  }

  private pathOf(source: string): string | null {
    if (source === "agent") return resolve(logDir(this.opts.config), AGENT_LOG);
    if (source.startsWith("file:")) return source.slice(5);
    return null;
  }

  private async tickInner(): Promise<void> {
    this.counters.ticks++;
    await this.refreshSources();
    const batches: { source: string; lines: string[] }[] = [];
    const byPath = new Map<string, string[]>();
    for (const [path, tailer] of this.tailers) {
      // A backlog (first start, a burst) drains over a few polls per round, not one per second.
      const lines: string[] = [];
      for (let k = 0; k < POLLS_PER_ROUND; k++) {
        const got = tailer.poll();
        if (got.length === 0) break;
        for (const l of got) lines.push(l);
      }
      byPath.set(path, lines);
    }
    for (const s of this.sources) {
      const path = this.pathOf(s);
      const lines = path !== null ? byPath.get(path) : undefined;
      if (lines?.length) batches.push({ source: s, lines });
    }
    for (const [unit, lines] of this.journal?.take() ?? [])
      batches.push({ source: `journal:${unit}`, lines });
    const quietMs = this.opts.config.selfHelp.quietSeconds * 1000;
    // Nothing new and nothing due to clear: an idle agent's round ends here, without waking the host.
    if (batches.length === 0 && this.now().getTime() < this.nextExpiryMs) return;
    // Large backlogs go over in bounded messages (lines and bytes: IPC messages are capped,
    // hosts.maxMessageBytes); findings of every message are handled.
    const chunks = chunkBatches(batches, MAX_LINES_PER_BATCH, MAX_BYTES_PER_BATCH);
    for (const batch of chunks) {
      this.counters.lines += batch.reduce((k, b) => k + b.lines.length, 0);
      this.counters.feeds++;
      const reply = (await this.opts.agent.call("ESH", "feed", {
        batches: batch,
        now: this.now().getTime(),
        quietMs,
      })) as FeedReply;
      this.apply(reply);
      this.nextExpiryMs = Number.POSITIVE_INFINITY;
      for (const f of reply.active)
        this.nextExpiryMs = Math.min(this.nextExpiryMs, Date.parse(f.lastSeen) + quietMs);
    }
  }

  private apply(reply: FeedReply): void {
    const { health, events } = this.opts.agent;
    const t = this.now().getTime();
    for (const f of reply.opened) {
      this.counters.opened++;
      health.raise("esh", "info", f.kba.id, findingMessage(f));
      this.raisedAt.set(f.kba.id, t);
      events.emit("selfhelp-finding", { ...f });
      this.opts.agent.notify({
        kind: "selfhelp-finding",
        type: "ESH",
        code: f.kba.id,
        reason: findingMessage(f),
      });
      this.log.info("self-help finding", { rule: f.ruleId, kba: f.kba.id, count: f.count });
    }
    for (const f of reply.updated) {
      // Counts change on every match; the board (and its event stream) hears it at most once a minute.
      if (t - (this.raisedAt.get(f.kba.id) ?? 0) < REPEAT_RAISE_MS) continue;
      health.raise("esh", "info", f.kba.id, findingMessage(f));
      this.raisedAt.set(f.kba.id, t);
    }
    for (const f of reply.cleared) {
      this.counters.cleared++;
      health.clear("esh", f.kba.id);
      this.raisedAt.delete(f.kba.id);
      events.emit("selfhelp-cleared", { ruleId: f.ruleId, kba: f.kba, lastSeen: f.lastSeen, count: f.count });
    }
    // A restarted esh host has forgotten its findings: the board follows what the host holds.
    const active = new Set(reply.active.map((f) => f.kba.id));
    for (const r of health.list()) if (r.source === "esh" && !active.has(r.code)) health.clear("esh", r.code);
  }

  stats() {
    return {
      enabled: this.opts.config.selfHelp.enabled,
      sources: this.sources,
      skipped: [...this.skipped],
      files: [...this.tailers.values()].map((t) => ({ path: t.path, ...t.counters })),
      journal: this.journal ? { dropped: this.journal.dropped, lastError: this.journal.lastError } : null,
      ...this.counters,
      lastError: this.lastError,
    };
  }

  async stop(): Promise<void> {
    this.stopTimer?.();
    this.unsub?.();
    await this.ticking;
    for (const t of this.tailers.values()) t.close();
    this.tailers.clear();
    this.journal?.close();
  }
}
