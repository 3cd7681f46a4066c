/**
 * Who is looking at the console (docs/rollout.md, "Console login"). Pure:
 * request facts in, an operator name or null out.
 *
 *   C1  `Authorization: Bearer TOKEN` or the `outpost_console` cookie (set by
 *       the login form) whose SHA-256 is an operator's `tokenSha256`
 *   C2  with `console.proxyHeader` set, that header's value names the
 *       operator — only when the TCP peer is one of `trustedProxies` (a
 *       client that reaches the service directly cannot claim a name)
 *   C3  nobody else: no console, no status.json
 */
import { sha256Hex } from "../../core/crypto/digest.ts";
import type { ConsoleAuthConfig } from "./config.ts";

export const CONSOLE_COOKIE = "outpost_console";

export function consoleOperator(
  auth: ConsoleAuthConfig,
  req: { authorization?: string; cookie?: string; header(name: string): string | undefined; peer?: string },
): string | null {
  const bearer = /^Bearer ([\x21-\x7e]{16,256})$/.exec(req.authorization ?? "")?.[1];
  const cookie = cookieValue(req.cookie, CONSOLE_COOKIE);
  for (const token of [bearer, cookie]) {
    if (!token) continue;
    const hash = sha256Hex(new TextEncoder().encode(token));
    for (const [name, op] of Object.entries(auth.operators)) if (op.tokenSha256 === hash) return name; // C1
  }
  if (auth.proxyHeader && req.peer && auth.trustedProxies.includes(normalisePeer(req.peer))) {
    const who = req.header(auth.proxyHeader)?.trim();
    if (who && /^[\x21-\x7e]{1,128}$/.test(who)) return `proxy:${who}`; // C2
  }
  return null; // C3
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) is 127.0.0.1. */
function normalisePeer(addr: string): string {
  return addr.startsWith("::ffff:") ? addr.slice(7) : addr;
}

export function loginPage(opts: { nonce: string; failed: boolean }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outpost release console — sign in</title>
<style nonce="${opts.nonce}">body{font:14px/1.4 system-ui,sans-serif;margin:2rem}input{font:inherit;width:28rem}</style></head>
<body><h1>Outpost release console</h1>
${opts.failed ? '<p id="error">That token is not an operator token.</p>' : ""}
<form method="post" action="/console/login">
<label>Operator token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<p>Tokens: <code>contentctl release token --operator NAME</code>, hash in <code>console.operators</code> of the release config.</p>
</body></html>
`;
}
