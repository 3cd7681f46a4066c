/**
 * Structured logging: one JSON object per line on stderr (stdout stays free
 * for command output that scripts parse). Sinks can be added so the control
 * plane and tests can observe the same records.
 */
import { writeStderr } from "./stdio.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogRecord = { ts: string; level: LogLevel; msg: string; [k: string]: unknown };
export type LogSink = (record: LogRecord) => void;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export class Logger {
  private sinks: LogSink[] = [];
  constructor(
    private readonly fields: Record<string, unknown> = {},
    private readonly root?: Logger,
    public minLevel: LogLevel = (process.env.OUTPOST_LOG_LEVEL as LogLevel) || "info",
    private writeStderr = process.env.OUTPOST_LOG_QUIET !== "1",
  ) {}

  child(fields: Record<string, unknown>): Logger {
    return new Logger({ ...this.fields, ...fields }, this.root ?? this, this.minLevel, this.writeStderr);
  }

  addSink(sink: LogSink): () => void {
    const target = this.root ?? this;
    target.sinks.push(sink);
    return () => {
      target.sinks = target.sinks.filter((s) => s !== sink);
    };
  }

  setStderr(on: boolean): void {
    (this.root ?? this).writeStderr = on;
  }

  log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    const root = this.root ?? this;
    if (ORDER[level] < ORDER[root.minLevel]) return;
    const record: LogRecord = { ts: new Date().toISOString(), level, msg, ...this.fields, ...fields };
    if (root.writeStderr) writeStderr(`${JSON.stringify(record)}\n`);
    for (const sink of root.sinks) sink(record);
  }

  debug(msg: string, f?: Record<string, unknown>) {
    this.log("debug", msg, f);
  }
  info(msg: string, f?: Record<string, unknown>) {
    this.log("info", msg, f);
  }
  warn(msg: string, f?: Record<string, unknown>) {
    this.log("warn", msg, f);
  }
  error(msg: string, f?: Record<string, unknown>) {
    this.log("error", msg, f);
  }
}

export const log = new Logger();
