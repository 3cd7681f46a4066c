/**
 * Journal lines for `journal:UNIT` sources: one `journalctl -o json
 * --follow --lines=0 -u UNIT…` child (the supervisor's; the esh host cannot
 * read the journal), its JSON records turned into (unit, MESSAGE) lines and
 * buffered until the next poll. A missing journalctl or a child that dies is
 * reported once and retried at most every minute; it never stops the rest.
 */
import { log as rootLog } from "../../core/log.ts";

const MAX_BUFFERED = 100_000;

export class JournalReader {
  private readonly log = rootLog.child({ component: "esh-journal" });
  private proc?: ReturnType<typeof Bun.spawn>;
  private readonly buffered = new Map<string, string[]>();
  private units: string[] = [];
  private lastStart = 0;
  dropped = 0;
  lastError: string | null = null;

  constructor(private readonly command: string[] = ["journalctl"]) {}

  /** Follows exactly these units (restarts the child when the set changes). */
  follow(units: readonly string[]): void {
    const next = [...new Set(units)].sort();
    if (next.join("\n") === this.units.join("\n") && this.proc) return;
    this.units = next;
    this.stopChild();
    if (next.length > 0) this.startChild();
  }

  private startChild(): void {
    const now = Date.now();
    if (now - this.lastStart < 60_000 && this.lastStart !== 0) return;
    this.lastStart = now;
    try {
      const proc = Bun.spawn(
        [...this.command, "-o", "json", "--follow", "--lines=0", ...this.units.flatMap((u) => ["-u", u])],
        { stdout: "pipe", stderr: "ignore", stdin: "ignore" },
      );
      this.proc = proc;
      void this.pump(proc);
    } catch (e) {
      this.lastError = (e as Error).message;
      this.log.warn("journal not readable; journal: sources skipped", { reason: this.lastError });
    }
  }

  private async pump(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
    let rest = "";
    const dec = new TextDecoder();
    try {
      for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
        const parts = (rest + dec.decode(chunk, { stream: true })).split("\n");
        rest = parts.pop() ?? "";
        for (const p of parts) this.record(p);
      }
    } catch {
      // the child went away; the next poll restarts it
    }
    if (this.proc === proc) this.proc = undefined;
  }

  private record(line: string): void {
    let rec: { _SYSTEMD_UNIT?: unknown; MESSAGE?: unknown; UNIT?: unknown };
    try {
      rec = JSON.parse(line);
    } catch {
      return;
    }
    const unit =
      typeof rec._SYSTEMD_UNIT === "string"
        ? rec._SYSTEMD_UNIT
        : typeof rec.UNIT === "string"
          ? rec.UNIT
          : "";
    // MESSAGE is an array of bytes when it is not valid UTF-8.
    const msg =
      typeof rec.MESSAGE === "string"
        ? rec.MESSAGE
        : Array.isArray(rec.MESSAGE)
          ? Buffer.from(rec.MESSAGE as number[]).toString("utf8")
          : "";
    if (!unit || !this.units.includes(unit)) return;
    let list = this.buffered.get(unit);
    if (!list) {
      list = [];
      this.buffered.set(unit, list);
    }
    if (list.length >= MAX_BUFFERED) {
      this.dropped++;
      return;
    }
    list.push(msg);
  }

  /** Lines per unit since the last take; restarts a child that died. */
  take(): Map<string, string[]> {
    if (!this.proc && this.units.length > 0) this.startChild();
    const out = new Map(this.buffered);
    this.buffered.clear();
    return out;
  }

  private stopChild(): void {
    this.proc?.kill();
    this.proc = undefined;
  }

  close(): void {
    this.units = [];
    this.stopChild();
  }
}
