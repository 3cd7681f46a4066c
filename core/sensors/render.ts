/** The `sensors` section of `agent status` (text): which sensor is in use, why, and what it costs. */
type Rec = Record<string, unknown>;

export function renderSensors(s: Rec): [string, string][] {
  const p = (s.process ?? {}) as Rec;
  const f = (s.files ?? {}) as Rec;
  const n = s.network as Rec | undefined;
  const o = s.onAccess as Rec | undefined;
  const why = (r: Rec) => (r.reason ? ` (${r.reason})` : "");
  const rows: [string, string][] = [
    [
      "process sensor",
      `${p.sensor}${why(p)}, ${p.execs ?? 0} execs, dropped ${p.dropped ?? 0}, lost ${p.kernelLost ?? 0}`,
    ],
    ["file sensor", `${f.sensor}${why(f)}, ${f.events ?? 0} events`],
    ["sensor events/s", String(s.eventsPerSecond ?? 0)],
  ];
  if (n) rows.splice(2, 0, ["network sensor", `${n.sensor}${why(n)}, ${n.connects ?? 0} connects`]);
  if (o) {
    rows.push([
      "on-access",
      `${o.sensor}, ${o.mode}${why(o)}: ${o.scanned ?? 0} scanned, cache hit rate ${o.cacheHitRate ?? 0}, ` +
        `${o.detections ?? 0} detections, ${o.blocked ?? 0} blocked, fail-open ${o.failOpen ?? 0}, ` +
        `deferred lookups ${o.deferredPending ?? 0}/${o.deferredLookups ?? 0}`,
    ]);
  }
  return rows;
}
