/**
 * Client for a running agent's control plane, found through the files the
 * agent advertises in its state directory. Prefers the unix socket (no port
 * to guess, filesystem permissions) and falls back to loopback TCP. Any
 * reason the agent cannot be used — no control.json, dead pid, refused
 * connection — is one error, CTL_NOT_RUNNING, so callers can decide to work
 * offline instead.
 */
import { existsSync, readFileSync } from "node:fs";
import type { AckResult, AgentStatus, ContentInfo, UpdateCycleReport } from "../agent/api.ts";
import type { AgentEvent } from "../agent/events.ts";
import { pidAlive } from "../pid.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { statePaths } from "../state-paths.ts";
import { ControlError, errorFromBody } from "./errors.ts";
import type { ControlInfo } from "./server.ts";

/** The AgentApi as seen across a process boundary: everything is asynchronous. */
export interface RemoteAgentApi {
  status(): Promise<AgentStatus>;
  content(): Promise<ContentInfo[]>;
  update(): Promise<UpdateCycleReport>;
  rollback(type: string): Promise<ContentInfo>;
  ack(type: string): Promise<AckResult>;
  call(type: string, method: string, args: unknown): Promise<unknown>;
}

const ControlInfoSchema = lazySchema(() =>
  z.object({
    url: z.url(),
    port: z.int(),
    pid: z.int(),
    startedAt: z.string(),
    socket: z.optional(z.string()),
  }),
);

export interface ControlClientOptions {
  url: string;
  token: string;
  socket?: string;
  /** Applied to the liveness probe only; an update cycle may take as long as it needs. */
  probeTimeoutMs?: number;
}

export class ControlClient implements RemoteAgentApi {
  readonly url: string;
  readonly socket?: string;
  private readonly token: string;
  private readonly probeTimeoutMs: number;

  constructor(opts: ControlClientOptions) {
    this.url = opts.url.replace(/\/$/, "");
    this.token = opts.token;
    this.socket = opts.socket;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? 3000;
  }

  /** Connects to the agent that owns `stateDir`, or throws CTL_NOT_RUNNING. */
  static async fromStateDir(
    stateDir: string,
    opts: { probeTimeoutMs?: number } = {},
  ): Promise<ControlClient> {
    const paths = statePaths(stateDir);
    const notRunning = (why: string, cause?: unknown) =>
      new ControlError("CTL_NOT_RUNNING", `no agent reachable for state dir ${stateDir}: ${why}`, {
        file: paths.controlInfo,
        cause,
      });

    if (!existsSync(paths.controlInfo)) throw notRunning(`${paths.controlInfo} not found`);
    let info: ControlInfo;
    try {
      info = ControlInfoSchema.parse(JSON.parse(readFileSync(paths.controlInfo, "utf8")));
    } catch (e) {
      throw notRunning(`${paths.controlInfo} is unreadable or malformed (${(e as Error).message})`, e);
    }
    if (!pidAlive(info.pid))
      throw notRunning(`agent pid ${info.pid} from ${paths.controlInfo} is not running`);

    let token: string;
    try {
      token = readFileSync(paths.controlToken, "utf8").trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Permission problems are not "not running": falling back to an offline agent would hit the same wall.
      if (code === "EACCES" || code === "EPERM") {
        throw new ControlError(
          "CTL_NO_ACCESS",
          `cannot read ${paths.controlToken}: ${code} (run as the agent's user)`,
          {
            file: paths.controlToken,
            cause: e,
          },
        );
      }
      throw notRunning(`${paths.controlToken} unreadable (${code ?? (e as Error).message})`, e);
    }

    const socket = info.socket && existsSync(info.socket) ? info.socket : undefined;
    const client = new ControlClient({ url: info.url, token, socket, probeTimeoutMs: opts.probeTimeoutMs });
    try {
      await client.health();
    } catch (e) {
      throw notRunning(`${socket ?? info.url} did not answer (${(e as Error).message})`, e);
    }
    return client;
  }

  async health(): Promise<{ status: string }> {
    return (await this.request("GET", "/v1/health", undefined, this.probeTimeoutMs)) as { status: string };
  }

  async status(): Promise<AgentStatus> {
    return (await this.request("GET", "/v1/status")) as AgentStatus;
  }

  async content(): Promise<ContentInfo[]> {
    return (await this.request("GET", "/v1/content")) as ContentInfo[];
  }

  async update(): Promise<UpdateCycleReport> {
    return (await this.request("POST", "/v1/update")) as UpdateCycleReport;
  }

  async rollback(type: string): Promise<ContentInfo> {
    return (await this.request("POST", `/v1/content/${encodeURIComponent(type)}/rollback`)) as ContentInfo;
  }

  async ack(type: string): Promise<AckResult> {
    return (await this.request("POST", `/v1/content/${encodeURIComponent(type)}/ack`)) as AckResult;
  }

  async call(type: string, method: string, args: unknown): Promise<unknown> {
    const path = `/v1/handlers/${encodeURIComponent(type)}/${encodeURIComponent(method)}`;
    const body = (await this.request("POST", path, args ?? null)) as { result: unknown };
    return body.result;
  }

  /** Prometheus text from GET /metrics. */
  async metrics(): Promise<string> {
    const res = await this.send("GET", "/metrics");
    if (!res.ok) throw await errorFromResponse(res);
    return res.text();
  }

  /** The OpenAPI 3.1 document the agent serves. */
  async openapi(): Promise<Record<string, unknown>> {
    return (await this.request("GET", "/v1/openapi.json")) as Record<string, unknown>;
  }

  /**
   * GET /v1/events as items: agent events with their ids, and gaps (events
   * after `lastEventId` the agent no longer holds). Ends when the server
   * ends the stream (always, with follow: false) or `signal` aborts.
   */
  async *events(opts: EventsOptions = {}): AsyncGenerator<EventStreamItem> {
    const query = new URLSearchParams();
    if (opts.follow === false) query.set("follow", "false");
    if (opts.tail !== undefined) query.set("tail", String(opts.tail));
    const res = await this.send("GET", `/v1/events${query.size ? `?${query}` : ""}`, {
      headers: opts.lastEventId !== undefined ? { "last-event-id": String(opts.lastEventId) } : {},
      signal: opts.signal,
    });
    if (!res.ok || !res.body) throw await errorFromResponse(res);
    try {
      for await (const m of readSse(res.body)) {
        if (m.data === undefined) continue;
        const data = parseJson(m.data);
        if (m.event === "gap") {
          const gap = data as { lastEventId: number | null; oldestAvailable: number | null };
          yield { kind: "gap", lastEventId: gap.lastEventId, oldestAvailable: gap.oldestAvailable };
        } else if (m.event === undefined || m.event === "message") {
          yield { kind: "event", id: Number(m.id), event: data as AgentEvent };
        }
      }
    } catch (e) {
      if (opts.signal?.aborted) return;
      if (e instanceof ControlError) throw e;
      // The connection broke mid-stream: the agent stopped or died.
      throw new ControlError("CTL_STREAM_CLOSED", `event stream broke off: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  private send(
    method: string,
    path: string,
    opts: { body?: unknown; timeoutMs?: number; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const { body } = opts;
    const signal = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : opts.signal;
    const init: RequestInit & { unix?: string } = {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...opts.headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
      ...(this.socket ? { unix: this.socket } : {}),
    };
    // Over the socket the host part is ignored, but the path still routes.
    return fetch(`${this.socket ? "http://localhost" : this.url}${path}`, init);
  }

  /** A JSON request to any route (feature routes mounted by extensions use it from their CLI). */
  async request(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<unknown> {
    const res = await this.send(method, path, { body, timeoutMs });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      throw new ControlError(
        "CTL_BAD_RESPONSE",
        `control plane answered HTTP ${res.status} with non-JSON body`,
        {
          details: { status: res.status },
        },
      );
    }
    if (!res.ok) throw errorFromBody(parsed, res.status);
    return parsed;
  }
}

export interface EventsOptions {
  /** false: only the events the agent holds now, then the stream ends. Default true. */
  follow?: boolean;
  /** Resume after this id (as an EventSource would with Last-Event-ID). */
  lastEventId?: number;
  /** Only the last N held events (ignored when resuming). */
  tail?: number;
  signal?: AbortSignal;
}

export type EventStreamItem =
  | { kind: "event"; id: number; event: AgentEvent }
  | { kind: "gap"; lastEventId: number | null; oldestAvailable: number | null };

export interface SseMessage {
  event?: string;
  id?: string;
  data?: string;
  retry?: number;
  /** A comment line (`: text`), e.g. a keep-alive. */
  comment?: string;
}

/**
 * A Server-Sent Events parser (the WHATWG "event stream interpretation"):
 * yields each dispatched message, and comment lines as they come so
 * callers can see keep-alives.
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = "";
  let pending: SseMessage = {};
  let data: string[] | undefined;
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl = buffer.search(/\r\n|\r|\n/);
    while (nl >= 0) {
      // A lone \r at the end of the buffer may be the first half of \r\n: wait for more.
      if (buffer[nl] === "\r" && nl === buffer.length - 1) break;
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (data !== undefined) pending.data = data.join("\n");
        if (pending.data !== undefined || pending.event !== undefined || pending.retry !== undefined)
          yield pending;
        pending = {};
        data = undefined;
      } else if (line.startsWith(":")) {
        yield { comment: line.slice(1).trimStart() };
      } else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") {
          data ??= [];
          data.push(value);
        } else if (field === "event") pending.event = value;
        else if (field === "id" && !value.includes("\0")) pending.id = value;
        else if (field === "retry" && /^\d+$/.test(value)) pending.retry = Number(value);
      }
      nl = buffer.search(/\r\n|\r|\n/);
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ControlError("CTL_BAD_RESPONSE", "control plane sent an event that is not JSON");
  }
}

async function errorFromResponse(res: Response): Promise<Error> {
  const text = await res.text();
  try {
    return errorFromBody(JSON.parse(text), res.status);
  } catch {
    return new ControlError(
      "CTL_BAD_RESPONSE",
      `control plane answered HTTP ${res.status} with non-JSON body`,
      {
        details: { status: res.status },
      },
    );
  }
}
