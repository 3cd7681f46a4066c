/**
 * The release console: one server-rendered HTML page (GET /console) with the
 * groups, their versions, each release's progress through them, and health
 * over time as inline SVG charts. No external assets, no framework: a short
 * nonce'd script re-fetches the page body (GET /console?fragment=1) so the
 * view follows the rollout, and a strict CSP keeps anything else out.
 */
import { esc } from "./http/html.ts";
import type { ReleaseStatusView, ReleaseView } from "./views.ts";

export { esc };

const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"];

const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 2 : 1)}%`;

export function consoleCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

export function renderConsolePage(
  view: ReleaseStatusView,
  opts: { nonce: string; refreshMs: number; extra?: string },
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Outpost release console</title>
<style nonce="${esc(opts.nonce)}">
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; }
th { background: #f3f3f3; }
.phase-live, .phase-soaked { background: #e6f4ea; }
.phase-reverted { background: #fde8e8; }
.verdict-unhealthy { color: #b00020; font-weight: bold; }
.status-aborted { color: #b00020; }
.status-completed { color: #1e7b34; }
.chart { margin: .25rem 1rem 1rem 0; display: inline-block; vertical-align: top; }
.legend span { margin-right: 1rem; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>Outpost release console</h1>
<main id="console" data-refresh-ms="${opts.refreshMs}">${renderConsoleBody(view, opts.extra)}</main>
<script nonce="${esc(opts.nonce)}">
(() => {
  const main = document.getElementById("console");
  const every = Number(main.dataset.refreshMs) || 10000;
  const refresh = async () => {
    try {
      const res = await fetch("/console?fragment=1", { cache: "no-store" });
      if (res.ok) main.innerHTML = await res.text();
    } catch {}
    setTimeout(refresh, every);
  };
  setTimeout(refresh, every);
})();
</script>
</body>
</html>
`;
}

/** `extra`: further sections (fleet/identity: tenants, enrollments, audit) after the releases. */
export function renderConsoleBody(view: ReleaseStatusView, extra = ""): string {
  const groups = `<h2>Release groups</h2>
<table id="groups"><thead><tr><th>group</th><th>entry</th><th>soak</th><th>active agents</th><th>content</th></tr></thead><tbody>
${view.groups
  .map(
    (g) =>
      `<tr data-group="${esc(g.name)}"><td>${esc(g.name)}${g.description ? ` <span class="muted">${esc(g.description)}</span>` : ""}</td><td>${esc(g.promote)}</td><td>${formatMinutes(g.soakMinutes)}</td><td class="agents">${g.agents}</td><td class="content">${
        Object.entries(g.content)
          .map(([t, v]) => `${esc(t)} v${v}`)
          .join(", ") || '<span class="muted">none</span>'
      }</td></tr>`,
  )
  .join("\n")}
</tbody></table>`;
  const releases = view.releases.length
    ? view.releases.map((r) => renderRelease(r, view)).join("\n")
    : '<p class="muted">No releases yet.</p>';
  return `<p class="muted">as of <time id="now">${esc(view.now)}</time> · abort threshold ${pct(view.threshold)}</p>
${groups}
<h2>Releases</h2>
${releases}
${extra}`;
}

function renderRelease(r: ReleaseView, view: ReleaseStatusView): string {
  const reached = r.groups.filter((g) => g.publishedAt).length;
  const rows = r.groups
    .map((g) => {
      const h = g.health;
      return `<tr class="phase-${g.phase}" data-group="${esc(g.name)}"><td>${esc(g.name)}</td><td class="phase">${esc(g.phase)}</td><td>${esc(g.publishedAt ?? "")}</td><td>${esc(g.soakEndsAt ?? "")}</td><td>${h ? `${h.exposed}/${h.agents}` : ""}</td><td>${h ? h.affected : ""}</td><td class="verdict-${esc(g.verdict ?? "none")}">${esc(g.verdict ?? "")}${g.share !== null && h && h.exposed > 0 ? ` (${pct(g.share)})` : ""}</td></tr>`;
    })
    .join("\n");
  return `<section class="release" id="release-${esc(r.id)}" data-status="${esc(r.status)}">
<h3>${esc(r.type)} v${r.version} — <span class="status-${esc(r.status)}">${esc(r.status)}</span> <span class="muted">(${reached}/${r.groups.length} groups reached, started ${esc(r.startedAt)})</span></h3>
${r.abort ? `<p class="status-aborted">Aborted ${esc(r.abort.at)} by ${esc(r.abort.by)}: ${esc(r.abort.reason)}. Reached groups re-signed as v${r.abort.revertVersion} with the last good content.</p>` : ""}
${r.next.map((n) => `<p class="next">next: ${esc(n)}</p>`).join("\n")}
<table class="progress"><thead><tr><th>group</th><th>phase</th><th>published</th><th>soak ends</th><th>exposed/active</th><th>affected</th><th>health</th></tr></thead><tbody>
${rows}
</tbody></table>
${renderCharts(r, view)}
</section>`;
}

function formatMinutes(m: number): string {
  if (m % 1440 === 0 && m > 0) return `${m / 1440} d`;
  if (m % 60 === 0 && m > 0) return `${m / 60} h`;
  return `${m} min`;
}

interface Series {
  group: string;
  color: string;
  points: { t: number; y: number }[];
}

/** Two charts over the release's lifetime: adoption per group, and the affected share against the threshold. */
function renderCharts(r: ReleaseView, view: ReleaseStatusView): string {
  if (r.health.length === 0) return '<p class="muted">No health samples yet.</p>';
  const t0 = Date.parse(r.startedAt);
  const t1 = Math.max(
    t0 + 60_000,
    Date.parse(r.finishedAt ?? view.now),
    ...r.health.map((s) => Date.parse(s.at)),
  );
  const names = r.groups.map((g) => g.name).filter((n) => r.health.some((s) => s.group === n));
  const series = (f: (s: ReleaseView["health"][number]) => number): Series[] =>
    names.map((group, i) => ({
      group,
      color: PALETTE[i % PALETTE.length] ?? "#333",
      points: r.health.filter((s) => s.group === group).map((s) => ({ t: Date.parse(s.at), y: f(s) })),
    }));
  const adoption = series((s) => (s.agents > 0 ? s.exposed / s.agents : 0));
  const affected = series((s) => (s.exposed > 0 ? s.affected / s.exposed : 0));
  const maxAffected = Math.max(
    view.threshold * 2,
    ...affected.flatMap((s) => s.points.map((p) => p.y)),
    0.001,
  );
  const legend = `<div class="legend">${adoption
    .map(
      (s) =>
        `<span><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="${s.color}"/></svg> ${esc(s.group)}</span>`,
    )
    .join("")}</div>`;
  return `${legend}
${chart("adoption", "Rollout progress: share of active agents on the new version", adoption, t0, t1, 1)}
${chart("affected", "Health: share of exposed agents affected (dashed: abort threshold)", affected, t0, t1, maxAffected, view.threshold)}`;
}

function chart(
  id: string,
  title: string,
  series: Series[],
  t0: number,
  t1: number,
  yMax: number,
  threshold?: number,
): string {
  const W = 560;
  const H = 200;
  const L = 48;
  const B = 24;
  const x = (t: number) => L + ((t - t0) / (t1 - t0)) * (W - L - 8);
  const y = (v: number) => H - B - (Math.min(v, yMax) / yMax) * (H - B - 8);
  const lines = series
    .filter((s) => s.points.length > 0)
    .map(
      (s) =>
        `<polyline class="series" data-group="${esc(s.group)}" fill="none" stroke="${s.color}" stroke-width="2" points="${s.points
          .map((p) => `${x(p.t).toFixed(1)},${y(p.y).toFixed(1)}`)
          .join(" ")}"/>`,
    )
    .join("\n");
  const hours = (t1 - t0) / 3_600_000;
  const ticks = [0, 0.5, 1]
    .map(
      (f) =>
        `<text x="${L - 4}" y="${(y(f * yMax) + 4).toFixed(1)}" text-anchor="end" font-size="10">${pct(f * yMax)}</text>`,
    )
    .join("");
  const thresholdLine =
    threshold !== undefined
      ? `<line class="threshold" x1="${L}" x2="${W - 8}" y1="${y(threshold).toFixed(1)}" y2="${y(threshold).toFixed(1)}" stroke="#b00020" stroke-dasharray="4 3"/>`
      : "";
  return `<figure class="chart"><svg id="chart-${esc(id)}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">
<title>${esc(title)}</title>
<line x1="${L}" y1="${H - B}" x2="${W - 8}" y2="${H - B}" stroke="#999"/>
<line x1="${L}" y1="8" x2="${L}" y2="${H - B}" stroke="#999"/>
${ticks}
<text x="${L}" y="${H - 6}" font-size="10">start</text>
<text x="${W - 8}" y="${H - 6}" font-size="10" text-anchor="end">+${hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} d`}</text>
${thresholdLine}
${lines}
</svg><figcaption>${esc(title)}</figcaption></figure>`;
}
