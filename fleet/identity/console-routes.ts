/**
 * Console login (rules C1–C3 in operators.ts) in front of GET /console and
 * /console/status.json, the sign-in form, and the identity section the
 * console shows (tenants per group, enrollments, audit trail).
 *
 *   GET  /console/login    sign-in form (token)
 *   POST /console/login    token → HttpOnly, SameSite=Strict cookie → 303 /console
 */
import { randomBytes } from "node:crypto";
import type { Context, Hono } from "hono";
import type { ReleaseConfig } from "../config.ts";
import type { FleetStore } from "../db/fleet-store.ts";
import { identitySummary, renderIdentitySection } from "./console-section.ts";
import { CONSOLE_COOKIE, consoleOperator, loginPage } from "./operators.ts";
import { assignedGroup } from "./routes.ts";
import type { IdentityStore } from "./store.ts";

export interface ConsoleAuthDeps {
  config: ReleaseConfig;
  store: IdentityStore;
  fleet: FleetStore;
  now: () => Date;
}

/** The peer address serveRelease passes as the Hono env (C2 trusts a proxy header only from it). */
export interface PeerEnv {
  peer?: string;
}

const operators = new WeakMap<Request, string>();

export function consoleAuth(app: Hono, deps: ConsoleAuthDeps): { section(c: Context): Promise<string> } {
  const auth = deps.config.console;
  app.get("/console/login", (c) => {
    const nonce = randomBytes(16).toString("base64");
    return c.html(loginPage({ nonce, failed: c.req.query("failed") === "1" }), 200, {
      "Cache-Control": "no-store",
      "Content-Security-Policy": `default-src 'none'; style-src 'nonce-${nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    });
  });
  app.post("/console/login", async (c) => {
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const token = typeof form.token === "string" ? form.token.trim() : "";
    const who = consoleOperator(
      { ...auth, proxyHeader: undefined },
      { authorization: `Bearer ${token}`, header: () => undefined },
    );
    if (!who) return c.redirect("/console/login?failed=1", 303);
    const secure = new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
    c.header(
      "Set-Cookie",
      `${CONSOLE_COOKIE}=${encodeURIComponent(token)}; Path=/console; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`,
    );
    return c.redirect("/console", 303);
  });
  const gate = async (c: Context, next: () => Promise<void>) => {
    if (c.req.path === "/console/login") return next();
    const who = consoleOperator(auth, {
      authorization: c.req.header("authorization"),
      cookie: c.req.header("cookie"),
      header: (n) => c.req.header(n),
      peer: (c.env as PeerEnv | undefined)?.peer,
    });
    if (!who) {
      // A browser asking for the page goes to the form; scripts get a status they can test.
      if (c.req.path === "/console" && c.req.query("fragment") !== "1")
        return c.redirect("/console/login", 303);
      return c.json({ error: "operator login required", code: "FLEET_CONSOLE_LOGIN" }, 401);
    }
    operators.set(c.req.raw, who);
    await next();
  };
  app.use("/console", gate);
  app.use("/console/*", gate);
  return {
    async section(c) {
      const now = deps.now().getTime();
      const summary = identitySummary(
        await deps.fleet.activeTenants(now - deps.config.health.activeWindowMinutes * 60_000),
        await deps.store.enrollments(),
        deps.config.fleet.tenants,
        (t) => assignedGroup(deps.config, t),
        { now },
      );
      return renderIdentitySection(summary, await deps.store.audit(), operators.get(c.req.raw) ?? "?");
    },
  };
}
