/**
 * The scanner's Prometheus series (GET /metrics; the telemetry report picks
 * them by name, handlers/TELEMSUP/report.ts). Kept apart from the scan
 * service so the series and their labels are read in one place.
 */
import { metrics } from "../../../core/metrics.ts";

export const detectionsTotal = metrics.counter(
  "outpost_scan_detections_total",
  "Detections, by kind and final verdict",
);
export const scannedBytes = metrics.counter(
  "outpost_scan_bytes_total",
  "Bytes sent to the scanner, by source (file, memory, bytes)",
);
export const lookupsTotal = metrics.counter(
  "outpost_sxl_lookups_total",
  "Live Protection lookups, by outcome",
);
/**
 * Per object (a file, a memory region, a body of bytes): from reading it to
 * its final verdict, reputation and Live Protection included — what an
 * on-access open waits for, and what an on-demand scan spends per object.
 * Buckets from 0.5 ms (a small file) to 30 s (a large archive).
 */
export const scanDuration = metrics.histogram(
  "outpost_scan_duration_seconds",
  "Time to scan one object, by mode (on-demand, on-access) and target (file, memory, bytes)",
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30],
);
export const durationOf = {
  file: scanDuration.bind({ mode: "on-demand", target: "file" }),
  memory: scanDuration.bind({ mode: "on-demand", target: "memory" }),
  bytes: scanDuration.bind({ mode: "on-demand", target: "bytes" }),
  onAccess: scanDuration.bind({ mode: "on-access", target: "file" }),
};
