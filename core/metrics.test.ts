import { expect, test } from "bun:test";
import { MetricsRegistry } from "./metrics.ts";

test("renders counters, gauges and histograms in Prometheus text format", () => {
  const m = new MetricsRegistry();
  const c = m.counter("outpost_updates_total", "update cycles");
  c.inc({ result: "ok" });
  c.inc({ result: "ok" });
  c.inc({ result: 'we"ird' });
  m.gauge("outpost_up", "up").set(undefined, 1);
  const h = m.histogram("outpost_req_seconds", "latency", [0.1, 1]);
  h.observe({ route: "/v1/status" }, 0.05);
  h.observe({ route: "/v1/status" }, 0.5);
  const text = m.render();
  expect(text).toContain("# TYPE outpost_updates_total counter");
  expect(text).toContain('outpost_updates_total{result="ok"} 2');
  expect(text).toContain('outpost_updates_total{result="we\\"ird"} 1');
  expect(text).toContain("outpost_up 1");
  expect(text).toContain('outpost_req_seconds_bucket{route="/v1/status",le="0.1"} 1');
  expect(text).toContain('outpost_req_seconds_bucket{route="/v1/status",le="+Inf"} 2');
  expect(text).toContain('outpost_req_seconds_count{route="/v1/status"} 2');
  expect(m.counter("outpost_updates_total", "again")).toBe(c);
  expect(() => m.gauge("outpost_updates_total", "x")).toThrow();
});

test("bound series count into the same samples as labelled calls", () => {
  const m = new MetricsRegistry();
  const c = m.counter("outpost_bound_total", "bound");
  const ok = c.bind({ route: "/v1/status", status: "200" });
  ok.inc();
  ok.inc(2);
  c.inc({ status: "200", route: "/v1/status" });
  expect(c.get({ route: "/v1/status", status: "200" })).toBe(4);
  const h = m.histogram("outpost_bound_seconds", "bound", [0.1, 1]);
  const s = h.bind({ route: "/v1/status" });
  s.observe(0.05);
  h.observe({ route: "/v1/status" }, 2);
  const text = m.render();
  expect(text).toContain('outpost_bound_seconds_bucket{route="/v1/status",le="0.1"} 1');
  expect(text).toContain('outpost_bound_seconds_bucket{route="/v1/status",le="+Inf"} 2');
  expect(text).toContain('outpost_bound_seconds_sum{route="/v1/status"} 2.05');
});

test("label values are escaped, and label order does not make a second series", () => {
  const r = new MetricsRegistry();
  const c = r.counter("t_escaped_total", "escaping");
  c.inc({ path: 'a\\b"c\nd', kind: "x" });
  c.inc({ kind: "x", path: 'a\\b"c\nd' }, 2);
  c.inc({ kind: "plain" });
  const text = r.render();
  expect(text).toContain('t_escaped_total{kind="x",path="a\\\\b\\"c\\nd"} 3');
  expect(text).toContain('t_escaped_total{kind="plain"} 1');
  expect(c.get({ path: 'a\\b"c\nd', kind: "x" })).toBe(3);
});
