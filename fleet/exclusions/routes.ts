/**
 * The fleet service's exclusion receiver and console section, hooked into
 * `contentctl serve --release` (fleet/server.ts):
 *
 *   POST /fleet/exclusions            one agent's full list (tenant bearer token, or none for the list an
 *                                     enrolled agent's signed heartbeat announced; ≤ 32 MiB,
 *                                     `Idempotency-Key: <agentId>:<hash>`, zod-validated, hash checked)
 *   GET  /console/exclusions          every agent's summary; ?agent=ID: that agent's list (HTML)
 *   GET  /console/exclusions.json     the same as JSON (what `contentctl fleet exclusions` prints)
 */
import { createHash } from "node:crypto";
import { Hono } from "hono";
import { sha256Hex } from "../../core/crypto/digest.ts";
import {
  EXCLUSIONS_PATH,
  ExclusionReportSchema,
  MAX_EXCLUSION_REPORT_BYTES,
} from "../../core/exclusions/report.ts";
import type { ExclusionStore } from "./store.ts";

const fail = (code: string, error: string) => ({ error, code });
const esc = (s: unknown) =>
  String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

export function exclusionsApp(deps: {
  store: ExclusionStore;
  tenants: Record<string, { tokenSha256: string }>;
  now?: () => Date;
}): Hono {
  const now = deps.now ?? (() => new Date());
  const byHash = new Map(Object.entries(deps.tenants).map(([t, v]) => [v.tokenSha256, t]));
  const app = new Hono();

  app.post(EXCLUSIONS_PATH, async (c) => {
    const token = /^Bearer ([\x21-\x7e]{16,256})$/.exec(c.req.header("authorization") ?? "")?.[1];
    const byToken = token ? byHash.get(sha256Hex(new TextEncoder().encode(token))) : undefined;
    if (token && !byToken) return c.json(fail("FLEET_UNAUTHORIZED", "unauthorized"), 401);
    if (!(c.req.header("content-type") ?? "").toLowerCase().startsWith("application/json"))
      return c.json(fail("FLEET_MEDIA_TYPE", "content-type must be application/json"), 415);
    const key = /^([A-Za-z0-9-]{8,64}):([0-9a-f]{64})$/.exec(c.req.header("idempotency-key") ?? "");
    if (!key) return c.json(fail("FLEET_INVALID", "Idempotency-Key <agentId>:<hash> required"), 400);
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > MAX_EXCLUSION_REPORT_BYTES)
      return c.json(fail("FLEET_TOO_LARGE", "report too large"), 413);
    const raw = new Uint8Array(await c.req.arrayBuffer());
    if (raw.byteLength > MAX_EXCLUSION_REPORT_BYTES)
      return c.json(fail("FLEET_TOO_LARGE", "report too large"), 413);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
    } catch {
      return c.json(fail("FLEET_INVALID", "not UTF-8 JSON"), 400);
    }
    const parsed = ExclusionReportSchema.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      return c.json(
        fail("FLEET_INVALID", `invalid exclusion report: ${i.path.join(".") || "(root)"}: ${i.message}`),
        400,
      );
    }
    const r = parsed.data;
    if (byToken !== undefined && r.tenant !== byToken)
      return c.json(fail("FLEET_WRONG_TENANT", "token does not belong to this tenant"), 403);
    const tenant = r.tenant;
    if (key[1] !== r.agentId || key[2] !== r.summary.hash)
      return c.json(fail("FLEET_INVALID", "Idempotency-Key does not match the report"), 400);
    // The agent's hash is over its list in canonical order (core/exclusions/service.ts): check it.
    const actual = createHash("sha256").update(JSON.stringify(r.exclusions)).digest("hex");
    if (actual !== r.summary.hash || r.exclusions.length !== r.summary.count)
      return c.json(fail("FLEET_INVALID", "the list does not match its summary (count or hash)"), 400);
    // Without a tenant token (an enrolled agent), only the list its signed heartbeat announced is taken.
    if (
      byToken === undefined &&
      !(await deps.store.expects(tenant, r.agentId, r.summary.hash, r.summary.count))
    )
      return c.json(fail("FLEET_UNAUTHORIZED", "no signed heartbeat announced this list"), 401);
    const stored = await deps.store.storeList(tenant, r, now());
    return c.json({ stored, count: r.exclusions.length }, stored ? 201 : 200);
  });

  const view = async (agent?: string) =>
    agent ? deps.store.agent(agent) : { agents: await deps.store.agents() };
  app.get("/console/exclusions.json", async (c) => {
    const agent = c.req.query("agent");
    const v = await view(agent);
    return v
      ? c.json(v)
      : c.json(fail("FLEET_UNKNOWN_AGENT", `no exclusions reported by agent ${agent}`), 404);
  });
  app.get("/console/exclusions", async (c) => {
    const agent = c.req.query("agent");
    const headers = {
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    };
    let body: string;
    if (agent) {
      const a = await deps.store.agent(agent);
      if (!a) return c.html(`<p>No exclusions reported by agent ${esc(agent)}.</p>`, 404, headers);
      body = `<h1>Exclusions of ${esc(a.agentId)} (${esc(a.tenant)})</h1>
<p>${a.count} exclusion(s), hash <code>${esc(a.hash.slice(0, 16))}…</code>, summary ${esc(a.summaryAt)}${a.stale ? " — full list pending (older list shown)" : ""}</p>
<table><tr><th>kind</th><th>value</th><th>scope</th><th>source</th><th>reason</th></tr>
${(a.exclusions ?? []).map((e) => `<tr><td>${esc(e.kind)}</td><td><code>${esc(e.value)}</code></td><td>${esc(e.scope.join(", "))}</td><td>${esc(e.source)}</td><td>${esc(e.reason)}</td></tr>`).join("\n")}
</table>`;
    } else {
      body = `<h1>Exclusions by agent</h1>
<table><tr><th>tenant</th><th>agent</th><th>count</th><th>by source</th><th>hash</th><th>full list</th></tr>
${(await deps.store.agents())
  .map(
    (a) =>
      `<tr><td>${esc(a.tenant)}</td><td><a href="?agent=${encodeURIComponent(a.agentId)}">${esc(a.agentId)}</a></td><td>${a.count}</td><td>${esc(
        Object.entries(a.bySource)
          .map(([k, n]) => `${k} ${n}`)
          .join(", "),
      )}</td><td><code>${esc(a.hash.slice(0, 12))}</code></td><td>${a.listHash === a.hash ? esc(a.listAt) : "pending"}</td></tr>`,
  )
  .join("\n")}
</table>`;
    }
    return c.html(
      `<!doctype html><html><head><meta charset="utf-8"><title>Outpost exclusions</title></head><body>${body}</body></html>`,
      200,
      headers,
    );
  });
  return app;
}
