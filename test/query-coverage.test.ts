/**
 * The coverage floor over osquery's own example packs (bench/query-coverage.ts):
 * at the start of issue 22, 74 of the 111 Linux/POSIX queries ran (66.7 %).
 */
import { describe, expect, test } from "bun:test";
import { measureCoverage } from "../bench/query-coverage.ts";

describe("osquery example packs on the embedded engine", () => {
  test(
    "at least 90 % of the Linux/POSIX queries run without error; only evented tables are missing",
    () => {
      const c = measureCoverage();
      expect(c.linux).toBe(111);
      expect(c.packs.map((p) => p.pack)).toEqual([
        "hardware-monitoring",
        "incident-response",
        "it-compliance",
        "osquery-monitoring",
        "ossec-rootkit",
        "vuln-management",
      ]);
      expect(c.percent).toBeGreaterThanOrEqual(90);
      expect(c.ok).toBeGreaterThanOrEqual(110);
      const failures = c.packs.flatMap((p) =>
        p.outcomes.filter((o) => !o.ok).map((o) => `${p.pack}/${o.name}: ${o.error}`),
      );
      expect(failures).toEqual(["hardware-monitoring/hardware_events: no such table: hardware_events"]);
    },
    { timeout: 60_000 },
  );
});
