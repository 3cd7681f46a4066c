/**
 * GET /metrics and the control plane's own metrics: route patterns (never
 * raw paths) as labels, refusals counted, process gauges filled at scrape.
 * The registry is process-wide, so assertions are on differences.
 */
import { describe, expect, test } from "bun:test";
import { FakeAgentApi } from "../../test/fakes/agent-api.ts";
import { parsePrometheusText } from "../cli/agent/metrics.ts";
import { metrics } from "../metrics.ts";
import { createControlApp } from "./server.ts";

const TOKEN = "m".repeat(64);
const auth = { authorization: `Bearer ${TOKEN}` };

async function scrape(app: ReturnType<typeof createControlApp>) {
  const res = await app.request("http://localhost/metrics", { headers: auth });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(await res.text());
}

function sample(
  families: ReturnType<typeof parsePrometheusText>,
  name: string,
  labels: Record<string, string> = {},
) {
  for (const f of families)
    for (const s of f.samples)
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
  return 0;
}

describe("GET /metrics", () => {
  test("needs the token like everything but health", async () => {
    const app = createControlApp(new FakeAgentApi(), { token: TOKEN });
    const res = await app.request("http://localhost/metrics");
    expect(res.status).toBe(401);
  });

  test("requests are counted by route pattern, method and status; latency by route", async () => {
    const app = createControlApp(new FakeAgentApi(), { token: TOKEN });
    const before = await scrape(app);
    const rollback = { route: "/v1/content/:type/rollback", method: "POST", status: "200" };
    const n0 = sample(before, "outpost_http_requests_total", rollback);
    const h0 = sample(before, "outpost_http_request_seconds_count", { route: rollback.route });
    for (const type of ["Hmpa_data", "Hmpa_data", "Hmpa_data"])
      await app.request(`http://localhost/v1/content/${type}/rollback`, { method: "POST", headers: auth });
    await app.request("http://localhost/v1/nope/1234", { headers: auth });
    await app.request("http://localhost/v1/status");
    const after = await scrape(app);

    expect(sample(after, "outpost_http_requests_total", rollback) - n0).toBe(3);
    expect(sample(after, "outpost_http_request_seconds_count", { route: rollback.route }) - h0).toBe(3);
    expect(sample(after, "outpost_http_request_seconds_bucket", { route: rollback.route, le: "+Inf" })).toBe(
      sample(after, "outpost_http_request_seconds_count", { route: rollback.route }),
    );
    // Unknown paths share one label; refusals are counted with their status.
    expect(
      sample(after, "outpost_http_requests_total", { route: "unmatched", status: "404" }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(after, "outpost_http_requests_total", { route: "/v1/status", status: "401" }),
    ).toBeGreaterThanOrEqual(1);
    const routes = new Set(
      after.find((f) => f.name === "outpost_http_requests_total")!.samples.map((s) => s.labels.route),
    );
    for (const r of routes) expect(r).not.toMatch(/Hmpa_data|1234/);
  });

  test("process gauges are filled at scrape time; agent metrics from the registry are served", async () => {
    metrics.counter("outpost_test_scraped_total", "test counter").inc({ code: 'SIG_"X"' });
    const app = createControlApp(new FakeAgentApi(), { token: TOKEN });
    const families = await scrape(app);
    expect(sample(families, "outpost_process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
    expect(sample(families, "outpost_process_uptime_seconds")).toBeGreaterThan(0);
    expect(sample(families, "outpost_build_info")).toBe(1);
    expect(sample(families, "outpost_test_scraped_total", { code: 'SIG_"X"' })).toBe(1);
    const types = Object.fromEntries(families.map((f) => [f.name, f.type]));
    expect(types).toMatchObject({
      outpost_http_requests_total: "counter",
      outpost_http_request_seconds: "histogram",
      outpost_process_resident_memory_bytes: "gauge",
    });
  });
});

describe("parsePrometheusText (agent metrics --json)", () => {
  test("families, label escapes, histogram samples and special values", () => {
    const text = [
      "# HELP a_total Things\\ncounted",
      "# TYPE a_total counter",
      'a_total{code="X\\"Y",path="C:\\\\dir"} 3',
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{le="0.1"} 1',
      'h_seconds_bucket{le="+Inf"} 2',
      "h_seconds_sum 0.3",
      "h_seconds_count 2",
      "untyped_thing NaN",
      "",
    ].join("\n");
    const f = parsePrometheusText(text);
    expect(f.map((x) => [x.name, x.type, x.samples.length])).toEqual([
      ["a_total", "counter", 1],
      ["h_seconds", "histogram", 4],
      ["untyped_thing", "untyped", 1],
    ]);
    expect(f[0]!.help).toBe("Things\ncounted");
    expect(f[0]!.samples[0]).toEqual({ name: "a_total", labels: { code: 'X"Y', path: "C:\\dir" }, value: 3 });
    expect(f[1]!.samples[1]).toEqual({ name: "h_seconds_bucket", labels: { le: "+Inf" }, value: 2 });
    expect(Number.isNaN(f[2]!.samples[0]!.value)).toBe(true);
  });
});
