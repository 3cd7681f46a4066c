import { describe, expect, test } from "bun:test";
import { metrics } from "../metrics.ts";
import { HealthBoard, type HealthChange } from "./reasons.ts";

function clock(start = Date.parse("2026-01-01T00:00:00Z")) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

describe("HealthBoard", () => {
  test("worst level wins; info never changes health", () => {
    const b = new HealthBoard();
    expect(b.worst()).toBe("green");
    b.raise("esh", "info", "ESH_FINDING", "KBA-1 seen");
    expect(b.worst()).toBe("green");
    b.raise("store", "amber", "STORE_NO_SPACE", "state dir full");
    expect(b.worst()).toBe("amber");
    b.raise("ips", "red", "IPS_SELF_DISABLED", "queue overrun");
    expect(b.worst()).toBe("red");
    expect(b.list().map((r) => r.code)).toEqual(["IPS_SELF_DISABLED", "STORE_NO_SPACE", "ESH_FINDING"]);
    expect(b.clear("ips", "IPS_SELF_DISABLED")).toBe(true);
    expect(b.clear("ips", "IPS_SELF_DISABLED")).toBe(false);
    expect(b.worst()).toBe("amber");
  });

  test("raising again keeps since, updates the message, and notifies once per real change", () => {
    const c = clock();
    const b = new HealthBoard(c.now);
    const seen: HealthChange[] = [];
    b.onChange((x) => seen.push(x));
    b.raise("host:scanner", "amber", "HOST_UID_NOT_DROPPED", "runs as root");
    c.advance(1000);
    b.raise("host:scanner", "amber", "HOST_UID_NOT_DROPPED", "runs as root");
    b.raise("host:scanner", "amber", "HOST_UID_NOT_DROPPED", "runs as root (again)");
    const r = b.get("host:scanner", "HOST_UID_NOT_DROPPED");
    expect(r?.since).toBe("2026-01-01T00:00:00.000Z");
    expect(r?.message).toBe("runs as root (again)");
    expect(seen.map((x) => x.kind)).toEqual(["raised", "updated"]);
  });

  test("until expires a reason; ack reasons clear only by acknowledgement or clear", () => {
    const c = clock();
    const b = new HealthBoard(c.now);
    const seen: HealthChange[] = [];
    b.onChange((x) => seen.push(x));
    b.raise("net", "amber", "PROBE_FAILED", "probe failed", { until: 5000 });
    b.raise("update", "amber", "CONTENT_AUTO_ROLLED_BACK", "Hmpa_data v3 → v2", { ack: true });
    c.advance(5000);
    expect(b.list().map((r) => r.code)).toEqual(["CONTENT_AUTO_ROLLED_BACK"]);
    expect(b.acknowledge("update", "OTHER")).toBe(0);
    expect(b.acknowledge("update")).toBe(1);
    expect(b.worst()).toBe("green");
    expect(seen.filter((x) => x.kind === "cleared").map((x) => (x.kind === "cleared" ? x.by : ""))).toEqual([
      "expired",
      "ack",
    ]);
  });

  test("reasons are exported as a gauge and a throwing listener changes nothing", () => {
    const b = new HealthBoard();
    b.onChange(() => {
      throw new Error("listener bug");
    });
    b.raise("test-gauge", "red", "T_GAUGE", "x");
    expect(metrics.render()).toContain(
      'outpost_health_reason{code="T_GAUGE",level="red",source="test-gauge"} 1',
    );
    b.clearSource("test-gauge");
    expect(metrics.render()).toContain(
      'outpost_health_reason{code="T_GAUGE",level="red",source="test-gauge"} 0',
    );
  });
});
