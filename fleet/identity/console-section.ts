/**
 * The console's identity section: tenants per group (active, enrolled,
 * vendor), each tenant's enrollments against its limits, and the latest
 * audited actions. Pure rendering over data the server passes in.
 */

import type { TenantActivity } from "../db/fleet-store.ts";
import { esc } from "../http/html.ts";
import type { TenantConfig } from "./config.ts";
import type { AuditRecord, Enrollment } from "./store.ts";

export interface IdentitySummary {
  groups: {
    group: string;
    tenants: { tenant: string; vendor: boolean; active: number; enrolled: number }[];
  }[];
  tenants: {
    tenant: string;
    vendor: boolean;
    group: string;
    enrolled: number;
    lastHour: number;
    maxAgents: number;
    perHour: number;
  }[];
}

export function identitySummary(
  activity: readonly TenantActivity[],
  enrollments: readonly Enrollment[],
  tenants: Record<string, TenantConfig>,
  groupOf: (tenant: string) => string,
  o: { now: number },
): IdentitySummary {
  const perGroup = new Map<
    string,
    Map<string, { tenant: string; vendor: boolean; active: number; enrolled: number }>
  >();
  for (const a of activity) {
    const g = perGroup.get(a.group) ?? new Map();
    perGroup.set(a.group, g);
    g.set(a.tenant, { tenant: a.tenant, vendor: a.vendor, active: a.active, enrolled: a.enrolled });
  }
  const hourAgo = o.now - 3600_000;
  return {
    groups: [...perGroup.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([group, m]) => ({ group, tenants: [...m.values()].sort((a, b) => b.active - a.active) })),
    tenants: Object.entries(tenants).map(([tenant, t]) => {
      const mine = enrollments.filter((e) => e.tenant === tenant);
      return {
        tenant,
        vendor: t.vendor,
        group: groupOf(tenant),
        enrolled: mine.length,
        lastHour: mine.filter((e) => Date.parse(e.enrolledAt) >= hourAgo).length,
        maxAgents: t.enroll.maxAgents,
        perHour: t.enroll.perHour,
      };
    }),
  };
}

export function renderIdentitySection(
  s: IdentitySummary,
  audit: readonly AuditRecord[],
  operator: string,
): string {
  const groups = s.groups.length
    ? s.groups
        .map(
          (g) =>
            `<tr data-group="${esc(g.group)}"><td>${esc(g.group)}</td><td>${g.tenants
              .map(
                (t) =>
                  `${esc(t.tenant)}${t.vendor ? " (vendor)" : ""}: ${t.active} active, ${t.enrolled} signed`,
              )
              .join("; ")}</td></tr>`,
        )
        .join("\n")
    : '<tr><td colspan="2" class="muted">no agents have reported</td></tr>';
  const tenants = s.tenants
    .map(
      (t) =>
        `<tr data-tenant="${esc(t.tenant)}"><td>${esc(t.tenant)}${t.vendor ? " (vendor)" : ""}</td><td>${esc(t.group)}</td><td class="enrolled">${t.enrolled} / ${t.maxAgents}</td><td>${t.lastHour} / ${t.perHour}</td></tr>`,
    )
    .join("\n");
  const recent = audit.slice(-20).reverse();
  const trail = recent.length
    ? recent
        .map(
          (r) =>
            `<tr><td>${esc(r.at)}</td><td>${esc(r.actor)}</td><td>${esc(r.action)}</td><td>${esc(r.release)}</td><td>${esc(r.group ?? "")}</td><td>${esc(r.reason)}</td></tr>`,
        )
        .join("\n")
    : '<tr><td colspan="6" class="muted">nothing audited yet</td></tr>';
  return `<h2>Tenants per group</h2>
<table id="tenants-per-group"><thead><tr><th>group</th><th>tenants</th></tr></thead><tbody>
${groups}
</tbody></table>
<h2>Enrollments</h2>
<table id="enrollments"><thead><tr><th>tenant</th><th>enrolls into</th><th>enrolled / limit</th><th>last hour / rate</th></tr></thead><tbody>
${tenants}
</tbody></table>
<h2>Audit trail</h2>
<p class="muted">signed in as <span id="operator">${esc(operator)}</span> · <code>contentctl release audit</code> has the whole trail</p>
<table id="audit"><thead><tr><th>at</th><th>who</th><th>action</th><th>release</th><th>group</th><th>why</th></tr></thead><tbody>
${trail}
</tbody></table>`;
}
