/**
 * A typed request/response channel over frames (frame.ts), symmetric: the
 * supervisor asks a host to validate, load, call…; a host asks the
 * supervisor for agent actions and pushes events and log records. Every
 * message is validated with zod on arrival, requests time out and can be
 * cancelled, and nothing a peer sends can throw into the caller: protocol
 * problems are reported through `onProtocolError`, with `fatal` set when
 * the stream itself can no longer be trusted.
 */

import {
  ConfigError,
  HandlerError,
  isOutpostError,
  type OutpostError,
  PackageError,
  SignatureError,
  StoreError,
  UpdateError,
} from "../errors.ts";
import { z } from "../schema/zod.ts";
import { encodeFrame, type FrameError, FrameReader } from "./frame.ts";

const Id = z.int().check(z.positive(), z.lte(Number.MAX_SAFE_INTEGER));
const Fields = z.record(z.string(), z.unknown());

export const WireErrorSchema = z.strictObject({
  code: z.string().check(z.regex(/^[A-Z][A-Z0-9_]{0,63}$/)),
  message: z.string().check(z.maxLength(16_384)),
  file: z.optional(z.string().check(z.maxLength(4096))),
  name: z.optional(z.string().check(z.maxLength(64))),
  details: z.optional(Fields),
});
export type WireError = z.infer<typeof WireErrorSchema>;

export const MessageSchema = z.discriminatedUnion("t", [
  z.strictObject({
    t: z.literal("req"),
    id: Id,
    m: z.string().check(z.regex(/^[a-z][a-zA-Z]{0,31}$/)),
    a: z.optional(z.unknown()),
  }),
  z
    .strictObject({
      t: z.literal("res"),
      id: Id,
      ok: z.boolean(),
      r: z.optional(z.unknown()),
      e: z.optional(WireErrorSchema),
    })
    .check(
      z.refine((m) => (m.ok ? m.e === undefined : m.e !== undefined && m.r === undefined), {
        message: "an answer carries either a result (ok) or an error",
      }),
    ),
  z.strictObject({ t: z.literal("cancel"), id: Id }),
  z.strictObject({
    t: z.literal("evt"),
    type: z.string().check(z.regex(/^[A-Za-z][A-Za-z0-9._:-]{0,63}$/)),
    f: z.optional(Fields),
  }),
  z.strictObject({
    t: z.literal("log"),
    level: z.enum(["debug", "info", "warn", "error"]),
    msg: z.string().check(z.maxLength(4096)),
    f: z.optional(Fields),
  }),
]);
export type Message = z.infer<typeof MessageSchema>;
export type Notification = Extract<Message, { t: "evt" | "log" }>;

export interface ProtocolProblem {
  kind: string;
  message: string;
  fatal: boolean;
}

export interface ChannelOptions {
  /** Writes one encoded frame; throws when the peer is gone. */
  send(frame: Uint8Array): void;
  /** Largest frame accepted from the peer. */
  maxInbound: number;
  /** Largest frame this side sends. */
  maxOutbound: number;
  /** The peer's transfer region (shared-transfer.ts): request bytes in it go by reference. */
  sharedOut?: ArrayBuffer;
  /** Our read-only mapping of the region the peer writes: {"$shm": …} references resolve into it. */
  sharedIn?: ArrayBuffer;
  onRequest?(method: string, args: unknown, ctx: { signal: AbortSignal }): Promise<unknown> | unknown;
  onNotification?(n: Notification): void;
  onProtocolError?(p: ProtocolProblem): void;
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer?: ReturnType<typeof setTimeout>;
  cleanup?: () => void;
}

const ERROR_CLASSES: Record<string, new (code: string, message: string, opts?: object) => OutpostError> = {
  HandlerError,
  StoreError,
  PackageError,
  SignatureError,
  UpdateError,
  ConfigError,
};

export function toWireError(e: unknown): WireError {
  if (isOutpostError(e)) {
    let details: Record<string, unknown> | undefined;
    try {
      details = e.details ? JSON.parse(JSON.stringify(e.details)) : undefined;
    } catch {
      details = undefined;
    }
    return {
      code: e.code,
      message: e.message.slice(0, 16_384),
      ...(e.file ? { file: e.file.slice(0, 4096) } : {}),
      name: e.name,
      ...(details ? { details } : {}),
    };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: "INTERNAL", message: message.slice(0, 16_384), name: "Error" };
}

export function fromWireError(w: WireError): OutpostError {
  const Cls = (w.name && ERROR_CLASSES[w.name]) || HandlerError;
  return new Cls(w.code, w.message, { file: w.file, details: w.details });
}

export class Channel {
  private readonly reader: FrameReader;
  private readonly pending = new Map<number, Pending>();
  private readonly serving = new Map<number, AbortController>();
  private nextId = 1;
  private closedWith?: Error;

  constructor(private readonly opts: ChannelOptions) {
    this.reader = new FrameReader({
      maxBytes: opts.maxInbound,
      ...(opts.sharedIn ? { shared: opts.sharedIn } : {}),
      onMessage: (m) => this.receive(m),
      onError: (e: FrameError) => this.problem(e.kind, e.message, e.fatal),
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** Bytes from the peer. Never throws. */
  feed(chunk: Uint8Array): void {
    this.reader.push(chunk);
  }

  request(
    method: string,
    args: unknown,
    opts: { timeoutMs: number; signal?: AbortSignal; maxBytes?: number },
  ): Promise<unknown> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (opts.signal?.aborted)
      return Promise.reject(new HandlerError("HND_IPC_CANCELLED", `${method}: cancelled`));
    const id = this.nextId++;
    const frame = encodeFrame(
      { t: "req", id, m: method, a: args ?? null },
      opts.maxBytes ?? this.opts.maxOutbound,
      this.opts.sharedOut,
    );
    return new Promise((resolve, reject) => {
      const p: Pending = { method, resolve, reject };
      const abandon = (e: Error) => {
        if (!this.pending.has(id)) return;
        this.settle(id);
        this.trySend({ t: "cancel", id });
        reject(e);
      };
      p.timer = setTimeout(
        () =>
          abandon(
            new HandlerError("HND_IPC_TIMEOUT", `${method}: no answer within ${opts.timeoutMs} ms`, {
              details: { method, timeoutMs: opts.timeoutMs },
            }),
          ),
        opts.timeoutMs,
      );
      if (opts.signal) {
        const onAbort = () => abandon(new HandlerError("HND_IPC_CANCELLED", `${method}: cancelled`));
        opts.signal.addEventListener("abort", onAbort, { once: true });
        p.cleanup = () => opts.signal?.removeEventListener("abort", onAbort);
      }
      this.pending.set(id, p);
      try {
        this.opts.send(frame);
      } catch (e) {
        this.settle(id);
        reject(
          new HandlerError("HND_HOST_DOWN", `${method}: cannot write to the host (${(e as Error).message})`),
        );
      }
    });
  }

  notify(n: Notification): void {
    this.trySend(n);
  }

  /** Fails every pending request with `error`; later requests fail at once. */
  close(error: Error): void {
    if (this.closedWith) return;
    this.closedWith = error;
    for (const id of [...this.pending.keys()]) {
      const p = this.pending.get(id)!;
      this.settle(id);
      p.reject(error);
    }
    for (const c of this.serving.values()) c.abort(error);
    this.serving.clear();
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    p.cleanup?.();
    this.pending.delete(id);
  }

  private trySend(message: unknown): boolean {
    if (this.closedWith) return false;
    try {
      this.opts.send(encodeFrame(message, this.opts.maxOutbound));
      return true;
    } catch {
      return false;
    }
  }

  private problem(kind: string, message: string, fatal: boolean): void {
    try {
      this.opts.onProtocolError?.({ kind, message, fatal });
    } catch {
      // Reporting must not break the reader.
    }
  }

  private receive(raw: unknown): void {
    const parsed = MessageSchema.safeParse(raw);
    if (!parsed.success) {
      const id = (raw as { id?: unknown })?.id;
      this.problem("bad-message", `invalid message: ${z.prettifyError(parsed.error).slice(0, 500)}`, false);
      // A malformed answer to a request we are waiting for fails that request rather than leaving it to time out.
      if ((raw as { t?: unknown })?.t === "res" && typeof id === "number" && this.pending.has(id)) {
        const p = this.pending.get(id)!;
        this.settle(id);
        p.reject(new HandlerError("HND_IPC_PROTOCOL", `${p.method}: the host sent a malformed answer`));
      }
      return;
    }
    const m = parsed.data;
    switch (m.t) {
      case "res": {
        const p = this.pending.get(m.id);
        if (!p) {
          this.problem("unknown-id", `answer for unknown request id ${m.id}`, false);
          return;
        }
        this.settle(m.id);
        if (m.ok) p.resolve(m.r);
        else p.reject(fromWireError(m.e!));
        return;
      }
      case "req":
        void this.serve(m.id, m.m, m.a);
        return;
      case "cancel":
        this.serving.get(m.id)?.abort(new HandlerError("HND_IPC_CANCELLED", "cancelled by the peer"));
        this.serving.delete(m.id);
        return;
      default:
        try {
          this.opts.onNotification?.(m);
        } catch (e) {
          this.problem("notification-failed", (e as Error).message, false);
        }
    }
  }

  private async serve(id: number, method: string, args: unknown): Promise<void> {
    if (this.serving.has(id)) {
      this.problem("duplicate-id", `request id ${id} is already being served`, false);
      return;
    }
    const ctl = new AbortController();
    this.serving.set(id, ctl);
    let reply: unknown;
    try {
      if (!this.opts.onRequest)
        throw new HandlerError("HND_NO_METHOD", `${method}: this side serves no requests`);
      reply = {
        t: "res",
        id,
        ok: true,
        r: (await this.opts.onRequest(method, args, { signal: ctl.signal })) ?? null,
      };
    } catch (e) {
      reply = { t: "res", id, ok: false, e: toWireError(e) };
    }
    const cancelled = !this.serving.has(id) || ctl.signal.aborted;
    this.serving.delete(id);
    if (cancelled) return;
    if (!this.trySendOrError(reply, id)) return;
  }

  /** Sends a reply; a result that cannot be encoded (too large, not transferable) becomes an error reply. */
  private trySendOrError(reply: unknown, id: number): boolean {
    if (this.closedWith) return false;
    let frame: Uint8Array;
    try {
      frame = encodeFrame(reply, this.opts.maxOutbound);
    } catch (e) {
      frame = encodeFrame({ t: "res", id, ok: false, e: toWireError(e) }, this.opts.maxOutbound);
    }
    try {
      this.opts.send(frame);
      return true;
    } catch {
      return false;
    }
  }
}
