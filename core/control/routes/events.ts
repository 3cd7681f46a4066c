/**
 * `GET /v1/events`: the agent's events as Server-Sent Events.
 *
 * Each event is one `id: N` + `data: {json}` message; ids come from the
 * EventBus and only ever increase, so a client that reconnects with
 * `Last-Event-ID` (browsers' EventSource do it on their own) gets what it
 * missed from the bus's ring. When the ring no longer holds everything
 * after that id — or the id is from another agent process — the stream
 * says so with an `event: gap` message before replaying what it has:
 * silently losing a rejection or a detection is worse than repeating one.
 *
 * A stream costs the agent a subscription and a timer, so streams are
 * counted and capped, a client that stops reading is cut off once its
 * backlog passes a bound (it can resume with Last-Event-ID), and every way
 * a stream ends — client gone, server stopping, slow reader, `follow=false`
 * reaching the end of the backlog — runs the same cleanup.
 */
import type { SequencedEvent } from "../../agent/events.ts";
import { z } from "../../schema/zod.ts";
import { ControlError } from "../errors.ts";
import type { ControlEvents } from "../extensions.ts";
import { eventStreamsGauge } from "../http-metrics.ts";
import { doc } from "../openapi-document.ts";
import { defineRoute, OpenApiHono } from "../openapi-route.ts";
import { AgentEventSchema, COMMON_ERRORS, errorResponses, jsonContent } from "../schemas.ts";

export interface EventStreamOptions {
  /** Comment line sent when nothing else was, so proxies and clients see the connection alive. */
  keepAliveMs?: number;
  /** Concurrent streams; one more is refused with 503 CTL_TOO_MANY_STREAMS. */
  maxStreams?: number;
  /** Messages queued for a client that is not reading before it is disconnected. */
  maxQueued?: number;
  /** Reconnection delay suggested to EventSource clients (the SSE `retry:` field). */
  retryMs?: number;
}

const DEFAULTS = { keepAliveMs: 15_000, maxStreams: 16, maxQueued: 1024, retryMs: 3000 };
const encoder = new TextEncoder();

export interface StreamRequest {
  /** Resume after this id (Last-Event-ID); undefined: start with the retained backlog. */
  afterId?: number;
  /** Only the last `tail` retained events (ignored when resuming). */
  tail?: number;
  /** Keep the stream open for new events (default) or end after the backlog. */
  follow: boolean;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
}

/** The open streams of one control plane. */
export class EventStreams {
  private readonly closers = new Set<() => void>();
  private readonly opts: typeof DEFAULTS;

  constructor(
    private readonly events: ControlEvents | undefined,
    opts: EventStreamOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  get size(): number {
    return this.closers.size;
  }

  /** Ends every open stream (control plane stopping). */
  closeAll(): void {
    for (const close of [...this.closers]) close();
  }

  open(req: StreamRequest): Response {
    const events = this.events;
    if (!events)
      throw new ControlError("CTL_NOT_AVAILABLE", "this control plane has no agent event source to stream");
    if (this.closers.size >= this.opts.maxStreams) {
      throw new ControlError(
        "CTL_TOO_MANY_STREAMS",
        `${this.closers.size} event streams already open (limit ${this.opts.maxStreams}); close one and retry`,
      );
    }
    const { keepAliveMs, maxQueued, retryMs } = this.opts;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let lastSent = -1;
    let done = false;
    let unsubscribe: (() => void) | undefined;
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    let wroteSinceTick = false;

    const cleanup = () => {
      if (done) return;
      done = true;
      unsubscribe?.();
      if (keepAlive) clearInterval(keepAlive);
      req.signal?.removeEventListener("abort", close);
      this.closers.delete(close);
      eventStreamsGauge.set(undefined, this.closers.size);
    };
    function close() {
      if (done) return;
      cleanup();
      try {
        controller.close();
      } catch {
        // Already closed or errored by the other side.
      }
    }
    const write = (text: string) => {
      if (done) return;
      controller.enqueue(encoder.encode(text));
      wroteSinceTick = true;
      // A reader this far behind is not coming back soon; it can resume from the ring.
      if ((controller.desiredSize ?? 0) < -maxQueued) close();
    };
    const send = (s: SequencedEvent) => {
      if (s.id <= lastSent) return;
      lastSent = s.id;
      write(`id: ${s.id}\ndata: ${JSON.stringify(s.event)}\n\n`);
    };

    const stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        this.closers.add(close);
        eventStreamsGauge.set(undefined, this.closers.size);
        // Subscribing before reading the ring, in the same tick, leaves no window for an event to fall between.
        if (req.follow) unsubscribe = events.subscribe((event, id) => send({ id, event }));
        const backlog = events.since(req.afterId);
        write(`retry: ${retryMs}\n\n`);
        if (!backlog.complete) {
          const gap = { lastEventId: req.afterId ?? null, oldestAvailable: backlog.events[0]?.id ?? null };
          write(`event: gap\ndata: ${JSON.stringify(gap)}\n\n`);
        }
        const replay =
          req.afterId === undefined && req.tail !== undefined
            ? backlog.events.slice(Math.max(0, backlog.events.length - req.tail))
            : backlog.events;
        for (const s of replay) send(s);
        if (done) return;
        if (!req.follow) {
          close();
          return;
        }
        keepAlive = setInterval(() => {
          if (!wroteSinceTick) write(": keep-alive\n\n");
          wroteSinceTick = false;
        }, keepAliveMs);
        req.signal?.addEventListener("abort", close, { once: true });
        if (req.signal?.aborted) close();
      },
      cancel: cleanup,
    });
    return new Response(stream, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-store",
        "x-accel-buffering": "no",
      },
    });
  }
}

const EVENT_ID = /^\d{1,16}$/;

const eventsRoute = defineRoute({
  method: "get",
  path: "/",
  tags: ["events"],
  summary: "Agent events as Server-Sent Events",
  description: [
    "Streams updates, rejections, rollbacks, alerts, detections and host restarts as they happen,",
    "after replaying the events the agent still holds (all of them, the last `tail`, or those after",
    "`Last-Event-ID`). Each message is `id: <n>` plus `data: <AgentEvent JSON>`; ids strictly increase.",
    "`event: gap` (data `{ lastEventId, oldestAvailable }`) means events after the requested id are",
    "no longer held. Comment lines (`: keep-alive`) keep idle connections open. See docs/control-plane.md.",
  ].join(" "),
  request: {
    query: z.object({
      follow: doc(z.optional(z.enum(["true", "false", "1", "0"])), {
        description: "false: end the stream after the backlog (default true)",
      }),
      tail: doc(z.optional(z.coerce.number().check(z.int(), z.gte(0), z.lte(100_000))), {
        description: "Replay only the last N held events (ignored when resuming)",
      }),
      lastEventId: doc(z.optional(z.string().check(z.regex(EVENT_ID, "must be an event id"))), {
        description: "Same as the Last-Event-ID header, for clients that cannot set headers",
      }),
    }),
    headers: z.object({
      "last-event-id": doc(z.optional(z.string().check(z.regex(EVENT_ID, "must be an event id"))), {
        description: "Resume after this event id",
      }),
    }),
  },
  responses: {
    200: {
      description: "An SSE stream; each data line is one AgentEvent",
      content: jsonContent(AgentEventSchema, "text/event-stream"),
    },
    ...errorResponses(...COMMON_ERRORS, 400, 503),
  },
});

type BunServerLike = { timeout?: (req: Request, seconds: number) => void };

export function eventRoutes(streams: EventStreams): OpenApiHono {
  const app = new OpenApiHono();
  app.openapi(eventsRoute, (c) => {
    const query = c.req.valid("query");
    const header = c.req.valid("header")["last-event-id"];
    const afterId = header ?? query.lastEventId;
    const response = streams.open({
      afterId: afterId === undefined ? undefined : Number(afterId),
      tail: query.tail,
      follow: query.follow !== "false" && query.follow !== "0",
      signal: c.req.raw.signal,
    });
    // Bun closes connections idle for 10 s by default; a quiet event stream is not idle.
    (c.env as BunServerLike | undefined)?.timeout?.(c.req.raw, 0);
    return response;
  });
  return app;
}
