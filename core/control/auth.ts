/**
 * Bearer-token check for the control plane. Both sides are hashed first so
 * `crypto.timingSafeEqual` (Bun's native one, not node:crypto's: core/lazy-builtins.ts) always compares equal-length buffers: neither the
 * token's content nor its length leaks through response timing. The
 * expected digest is computed once; each request pays one SHA-256 of what
 * it presented (a fraction of a microsecond).
 */
import type { MiddlewareHandler } from "hono";
import { ControlError } from "./errors.ts";

const digest = (s: string): Uint8Array => Bun.SHA256.hash(s) as Uint8Array;
const timingSafeEqual = (a: Uint8Array, b: Uint8Array): boolean => crypto.timingSafeEqual(a, b);

export function tokensEqual(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

const BEARER = /^Bearer[ \t]+(\S+)\s*$/i;

/** Returns a predicate over the Authorization header value; throws CTL_WEAK_TOKEN for short tokens. */
export function tokenChecker(token: string): (authorization: string | undefined) => boolean {
  if (token.length < 32)
    throw new ControlError("CTL_WEAK_TOKEN", "control token must be at least 32 characters");
  const expected = digest(token);
  return (authorization) => {
    const match = BEARER.exec(authorization ?? "");
    return match !== null && timingSafeEqual(digest(match[1]!), expected);
  };
}

export function unauthorized(): ControlError {
  return new ControlError("CTL_UNAUTHORIZED", "missing or wrong bearer token (see STATE/control.token)");
}

export function requireToken(token: string): MiddlewareHandler {
  const ok = tokenChecker(token);
  return async (c, next) => {
    if (!ok(c.req.header("authorization"))) {
      c.header("WWW-Authenticate", 'Bearer realm="outpost-agent"');
      throw unauthorized();
    }
    await next();
  };
}
