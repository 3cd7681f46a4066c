/**
 * Feature routes that live outside the core (e.g. POST /v1/scan, which
 * belongs to the DatasetA handler) plug into the control plane through this
 * seam, like hono's `app.route`. The core never imports them: the entry
 * point passes them in. They are mounted behind the same host check, token
 * check, body limit, metrics and error mapping as the core routes, under /v1.
 *
 * `mount` receives an `OpenApiHono` (a `Hono` subclass, so plain
 * `v1.get/post` still work). Routes registered with
 * `v1.openapi(defineRoute({...}), handler)` and zod schemas appear in
 * `GET /v1/openapi.json` with their schemas, and their parameters and
 * bodies are validated (failures answer 400 CTL_BAD_REQUEST). Routes
 * registered the plain way are listed there too, as undocumented
 * operations tagged with the extension's name.
 */
import type { AgentApi } from "../agent/api.ts";
import type { EventBus } from "../agent/events.ts";
import type { OpenApiHono } from "./openapi-route.ts";

/** What the control plane needs from the agent's EventBus (a real bus in tests too). */
export type ControlEvents = Pick<EventBus, "subscribe" | "since">;

export interface ControlContext {
  api: AgentApi;
  /** The agent's event stream, when the API is a live agent (absent for fakes). */
  events?: ControlEvents;
}

export interface RouteExtension {
  /** For logs and the OpenAPI document (tag). */
  name: string;
  /** Registers routes on a sub-app mounted at /v1. */
  mount(v1: OpenApiHono, ctx: ControlContext): void;
}
