/**
 * The IPS's control-plane routes (a RouteExtension, mounted under /v1 by
 * `agent run` behind the token):
 *
 *   GET  /v1/ips/status    IpsStatus (service.ts)
 *   GET  /v1/ips/stats     IpsStatus + the ips host's engine stats with per-signature hits
 *   POST /v1/ips/enable    admin enable (clears a safety trip) → IpsStatus
 *   POST /v1/ips/disable   admin disable → IpsStatus
 */
import { Hono } from "hono";
import { ControlError } from "../../core/control/errors.ts";
import type { RouteExtension } from "../../core/control/extensions.ts";
import { describeError } from "../../core/errors.ts";
import { currentIpsService } from "./agent-service.ts";
import type { IpsService } from "./service.ts";

function service(): IpsService {
  const s = currentIpsService();
  if (!s) throw new ControlError("CTL_NOT_AVAILABLE", "the IPS service is not running in this agent");
  return s;
}

export function ipsRoutes(): RouteExtension {
  return {
    name: "ips",
    mount(v1, ctx) {
      const app = new Hono();
      app.get("/ips/status", (c) => c.json(service().status()));
      app.get("/ips/stats", async (c) => {
        const status = service().status();
        const limit = Math.min(100_000, Math.max(0, Number(c.req.query("limit") ?? 1000) || 0));
        let engine: unknown = null;
        let engineError: unknown = null;
        try {
          engine = await ctx.api.call("EPIPS_data", "stats", { limit });
        } catch (e) {
          engineError = describeError(e);
        }
        return c.json({ ...status, engine, ...(engineError ? { engineError } : {}) });
      });
      app.post("/ips/enable", async (c) => c.json(await service().enable()));
      app.post("/ips/disable", async (c) => c.json(await service().disable()));
      v1.route("/", app);
    },
  };
}
