/**
 * The telemetry console page: static HTML, no script, one nonce'd style
 * sheet, everything from the store escaped. Kept apart from the release
 * console so the telemetry folder depends on nothing of the release server.
 */
import type { TelemetryView } from "./store.ts";

export function esc(s: unknown): string {
  return String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

export function telemetryCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

function ruleTable(rows: TelemetryView["rules"]): string {
  if (rows.length === 0) return `<p class="muted">No rule telemetry yet.</p>`;
  return `<table><thead><tr><th>rule</th><th>agents</th><th>calls</th><th>faults</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr></thead><tbody>${rows
    .map(
      (r) =>
        `<tr><td>${esc(r.rule)}</td><td>${r.agents}</td><td>${r.calls}</td><td>${r.faults}</td><td>${r.p50Ms}</td><td>${r.p95Ms}</td><td>${r.p99Ms}</td><td>${r.maxMs}</td></tr>`,
    )
    .join("")}</tbody></table>`;
}

export function renderTelemetryPage(view: TelemetryView, nonce: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outpost telemetry: rule runtimes</title>
<style nonce="${esc(nonce)}">
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
td:first-child, th:first-child { text-align: left; }
th { background: #f3f3f3; }
.muted { color: #777; }
</style></head>
<body>
<h1>Rule runtimes across the fleet</h1>
<p>${view.reports} report(s) from ${view.agents} agent(s); last received ${esc(view.lastReceivedAt ?? "never")}.
Percentiles are over agents of each rule's mean time per call (latest report per agent).</p>
<h2>Slowest rules (by p95)</h2>
${ruleTable(view.slowest)}
<h2>All rules</h2>
${ruleTable(view.rules)}
</body></html>`;
}
