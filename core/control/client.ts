/**
 * Client for a running agent's control plane, found through the files the
 * agent advertises in its state directory. Prefers the unix socket (no port
 * to guess, filesystem permissions) and falls back to loopback TCP. Any
 * reason the agent cannot be used — no control.json, dead pid, refused
 * connection — is one error, CTL_NOT_RUNNING, so callers can decide to work
 * offline instead.
 */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import type { AgentStatus, ContentInfo, UpdateCycleReport } from "../agent/api.ts";
import { statePaths } from "../config.ts";
import { ControlError, errorFromBody } from "./errors.ts";
import type { ControlInfo } from "./server.ts";

/** The AgentApi as seen across a process boundary: everything is asynchronous. */
export interface RemoteAgentApi {
  status(): Promise<AgentStatus>;
  content(): Promise<ContentInfo[]>;
  update(): Promise<UpdateCycleReport>;
  rollback(type: string): Promise<ContentInfo>;
  call(type: string, method: string, args: unknown): Promise<unknown>;
}

const ControlInfoSchema = z.object({
  url: z.string().url(),
  port: z.number().int(),
  pid: z.number().int(),
  startedAt: z.string(),
  socket: z.string().optional(),
});

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

  async call(type: string, method: string, args: unknown): Promise<unknown> {
    const path = `/v1/handlers/${encodeURIComponent(type)}/${encodeURIComponent(method)}`;
    const body = (await this.request("POST", path, args ?? null)) as { result: unknown };
    return body.result;
  }

  private async request(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<unknown> {
    const init: RequestInit & { unix?: string } = {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(timeoutMs ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
      ...(this.socket ? { unix: this.socket } : {}),
    };
    // Over the socket the host part is ignored, but the path still routes.
    const res = await fetch(`${this.socket ? "http://localhost" : this.url}${path}`, init);
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else — still alive.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
