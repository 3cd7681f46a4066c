/**
 * Bearer-token check for the control plane. Both sides are hashed first so
 * `timingSafeEqual` always compares equal-length buffers: neither the
 * token's content nor its length leaks through response timing.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { ControlError } from "./errors.ts";

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

export function tokensEqual(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

export function requireToken(token: string): MiddlewareHandler {
  if (token.length < 32)
    throw new ControlError("CTL_WEAK_TOKEN", "control token must be at least 32 characters");
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
    if (!match || !tokensEqual(match[1]!, token)) {
      c.header("WWW-Authenticate", 'Bearer realm="outpost-agent"');
      throw new ControlError("CTL_UNAUTHORIZED", "missing or wrong bearer token (see STATE/control.token)");
    }
    await next();
  };
}
