/** The process host's Prometheus series (core/metrics.ts registry). */
import { metrics } from "../metrics.ts";

export const restartsTotal = metrics.counter(
  "outpost_host_restarts_total",
  "Host process restarts after a crash, by group",
);
export const crashesTotal = metrics.counter(
  "outpost_host_crashes_total",
  "Host process crashes, by group and reason",
);
export const rssBytes = metrics.gauge(
  "outpost_host_rss_bytes",
  "Resident memory of each host process, by group",
);
export const ipcRequests = metrics.counter(
  "outpost_ipc_requests_total",
  "Requests from the supervisor to host processes, by group, method and result",
);
export const stagedBytes = metrics.counter(
  "outpost_host_staged_bytes_total",
  "Payload bytes sent to host processes to stage content (a headOnly file counts its head only), by group",
);
export const ipcSeconds = metrics.histogram(
  "outpost_ipc_request_seconds",
  "Round-trip time of supervisor → host requests, by group and method",
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
);
export const ipcProtocolErrors = metrics.counter(
  "outpost_ipc_protocol_errors_total",
  "Malformed, oversized or unexpected messages from host processes, by group and kind",
);
export const eventsDropped = metrics.counter(
  "outpost_host_events_dropped_total",
  "Events from host processes dropped by the rate limit or as reserved, by group",
);
export const idleStops = metrics.counter(
  "outpost_host_idle_stops_total",
  "Hosts stopped after an idle period (they start again on the next call), by group",
);
