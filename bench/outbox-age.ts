#!/usr/bin/env bun
/**
 * What one scheduled-query run costs the query host's outbox (append with
 * fsync, pull, ack) when the agent has been up for hours, against the same
 * cycle on a fresh outbox in the same run (issue 21, idle CPU).
 *
 * The segment being appended to keeps every acknowledged line until it
 * reaches 4 MiB. `--hours` of the demo pack (two queries every 10 s, lines
 * shaped like its real results) are appended and acknowledged first; then
 * `--runs` cycles of one line are timed (CPU of this process, user +
 * system) on that outbox and on a fresh one, alternating. Before the pull
 * read only new bytes, the aged cycle read the whole segment every time.
 *
 *   bun bench/outbox-age.ts [--hours 20] [--runs 200] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Outbox } from "../handlers/_shared/outbox/outbox.ts";

const { values } = parseArgs({
  options: {
    hours: { type: "string", default: "20" },
    runs: { type: "string", default: "200" },
    json: { type: "boolean" },
  },
});
const HOURS = Number(values.hours);
const RUNS = Number(values.runs);

/** A result line as the query host writes it (osquery's log format, the demo pack's two queries). */
function resultLine(i: number): string {
  const unixTime = 1_796_671_143 + i * 5;
  const common = {
    hostIdentifier: "vm",
    calendarTime: new Date(unixTime * 1000).toUTCString(),
    unixTime,
    epoch: 0,
    counter: i,
    numerics: false,
  };
  return i % 2 === 0
    ? JSON.stringify({
        snapshot: [{ name: "Debian GNU/Linux", version: "12 (bookworm)", platform: "debian" }],
        action: "snapshot",
        name: "pack_demo_os_version",
        ...common,
      })
    : JSON.stringify({
        name: "pack_demo_agent_process",
        ...common,
        columns: { pid: String(1000 + (i % 30_000)), name: "agent" },
        action: "added",
      });
}

const root = mkdtempSync(join(tmpdir(), "outpost-bench-outbox-"));
try {
  const aged = new Outbox(join(root, "aged"));
  const fresh = new Outbox(join(root, "fresh"));
  // Two lines every 10 s for HOURS, delivered as they came (batches of what one pull takes).
  const agedLines = Math.round((HOURS * 3600) / 10) * 2;
  for (let i = 0; i < agedLines; i += 500) {
    aged.append(Array.from({ length: Math.min(500, agedLines - i) }, (_, k) => resultLine(i + k)));
  }
  aged.ack(aged.generation, agedLines);
  const segmentBytes = aged.bytes;

  const cycle = (box: Outbox, i: number): { cpuUs: number; readBytes: number } => {
    const read0 = box.readBytes;
    const t0 = process.cpuUsage();
    box.append([resultLine(i)]);
    const p = box.pull(5000);
    box.ack(p.generation, p.first + p.lines.length - 1);
    const d = process.cpuUsage(t0);
    return { cpuUs: d.user + d.system, readBytes: box.readBytes - read0 };
  };
  const samples = { aged: [] as number[], fresh: [] as number[] };
  const readPerPull = { aged: 0, fresh: 0 };
  // A few cycles first, outside the timing (code warm-up for both).
  for (let i = 0; i < 10; i++) {
    cycle(aged, agedLines + i);
    cycle(fresh, i);
  }
  for (let i = 0; i < RUNS; i++) {
    const a = cycle(aged, agedLines + 10 + i);
    const f = cycle(fresh, 10 + i);
    samples.aged.push(a.cpuUs);
    samples.fresh.push(f.cpuUs);
    readPerPull.aged = a.readBytes;
    readPerPull.fresh = f.readBytes;
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const result = {
    hours: HOURS,
    runs: RUNS,
    agedSegmentBytes: segmentBytes,
    cpuUsPerRun: { aged: median(samples.aged), fresh: median(samples.fresh) },
    bytesReadPerPull: readPerPull,
    ratio: median(samples.aged) / median(samples.fresh),
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `outbox after ${HOURS} h (segment ${(segmentBytes / 1024 / 1024).toFixed(2)} MiB acknowledged): ` +
        `${result.cpuUsPerRun.aged} µs CPU per run (append + fsync, pull, ack), ${readPerPull.aged} bytes read per pull`,
    );
    console.log(
      `fresh outbox (baseline, same run):  ${result.cpuUsPerRun.fresh} µs CPU per run, ${readPerPull.fresh} bytes read per pull`,
    );
    console.log(`ratio aged / fresh: ${result.ratio.toFixed(2)} (1.00: a run costs what it did at start)`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
