/**
 * Feature routes that live outside the core (e.g. POST /v1/scan, which
 * belongs to the DatasetA handler) plug into the control plane through this
 * seam, like hono's `app.route`. The core never imports them: the entry
 * point passes them in. They are mounted behind the same token check, body
 * limit and error mapping as the core routes, under /v1.
 */
import type { Hono } from "hono";
import type { AgentApi } from "../agent/api.ts";
import type { AgentEvent } from "../agent/events.ts";

export interface ControlContext {
  api: AgentApi;
  /** The agent's event stream, when the API is a live agent (absent for fakes). */
  events?: { subscribe(fn: (e: AgentEvent) => void): () => void };
}

export interface RouteExtension {
  /** For logs and the OpenAPI document. */
  name: string;
  /** Registers routes on a sub-app mounted at /v1. */
  mount(v1: Hono, ctx: ControlContext): void;
}
