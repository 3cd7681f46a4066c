/** Each self-disable rule (W1–W4) fires on its own evidence and only then. */
import { expect, test } from "bun:test";
import { IpsConfigSchema } from "../../core/ips-config.ts";
import { judge, type Observation, parseProcQueue, percentile } from "./watchdog.ts";

const cfg = IpsConfigSchema.parse({
  queueMaxLen: 100,
  selfDisable: {
    verdictP99Ms: 20,
    minSamples: 10,
    hostCrashes: 3,
    probe: { target: "10.0.0.1:80", failures: 2 },
  },
});
const calm: Observation = {
  kernelDrops: 0,
  socketOverruns: 0,
  backlog: 10,
  latencies: new Array(100).fill(1),
  hostState: "running",
  hostCrashes: 0,
  probeFailures: 0,
};

test("a calm interval trips nothing", () => {
  expect(judge(calm, cfg)).toBeNull();
});

test("W1 IPS_QUEUE_OVERRUN: kernel drops, socket overruns, or a backlog at the limit", () => {
  expect(judge({ ...calm, kernelDrops: 1 }, cfg)?.code).toBe("IPS_QUEUE_OVERRUN");
  expect(judge({ ...calm, socketOverruns: 3 }, cfg)?.code).toBe("IPS_QUEUE_OVERRUN");
  expect(judge({ ...calm, backlog: 90 }, cfg)?.reason).toContain("backlog 90/100");
  expect(judge({ ...calm, backlog: 89 }, cfg)).toBeNull();
});

test("W2 IPS_VERDICT_SLOW: p99 above the threshold, only with enough samples", () => {
  const slow = [...new Array(95).fill(1), ...new Array(5).fill(50)];
  expect(judge({ ...calm, latencies: slow }, cfg)?.code).toBe("IPS_VERDICT_SLOW");
  expect(judge({ ...calm, latencies: [50, 50, 50] }, cfg)).toBeNull();
  expect(percentile([5, 1, 3, 2, 4], 50)).toBe(3);
});

test("W3 IPS_HOST_CRASHLOOP and W4 IPS_PROBE_FAILED", () => {
  expect(judge({ ...calm, hostState: "crash-looping" }, cfg)?.code).toBe("IPS_HOST_CRASHLOOP");
  expect(judge({ ...calm, hostCrashes: 3 }, cfg)?.code).toBe("IPS_HOST_CRASHLOOP");
  expect(judge({ ...calm, hostCrashes: 2 }, cfg)).toBeNull();
  expect(judge({ ...calm, probeFailures: 2 }, cfg)?.code).toBe("IPS_PROBE_FAILED");
  expect(judge({ ...calm, probeFailures: 1 }, cfg)).toBeNull();
});

test("/proc/net/netfilter/nfnetlink_queue rows are read by queue number; junk is skipped", () => {
  const text =
    "    0  12345     0 2  4096     0     0        0  1\n    7  99    31 2  4096     5     2     1234  1\ngarbage\n";
  expect(parseProcQueue(text, 7)).toEqual({ queue: 7, portId: 99, total: 31, dropped: 5, userDropped: 2 });
  expect(parseProcQueue(text, 8)).toBeNull();
});
