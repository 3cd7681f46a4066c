/**
 * `agent scan PATH… | --pid PID [--json]`: scans files, directory trees or
 * a process's memory with the installed DatasetA content. With an agent
 * running, the agent does the reading and scanning (POST /v1/scan, streamed
 * progress); otherwise this process opens the state directory and does the
 * same in-process, Live Protection lookups included (samples it queues are
 * sent by the agent when it next runs).
 *
 * `--json` adds `via`: "agent" (the running agent scanned, with the scanner
 * host it already has loaded — clamdscan to its clamd) or "offline" (this
 * process started its own). The offline machinery is imported only on that
 * path, so asking a running agent costs little more than the CLI's start-up.
 *
 * Exit codes: 1 when something was found (a detection Live Protection did
 * not dismiss), 0 when clean, 2 when nothing could be scanned (e.g. no such
 * path), 3 when no scanner content is installed, 4 when an agent holds the
 * state directory but cannot be reached.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { agentArgs, connectIfRunning } from "../../../core/cli/agent/online.ts";
import { EXIT } from "../../../core/cli/exit-codes.ts";
import { printErr, printJson, printText, UsageError } from "../../../core/cli/output.ts";
import type { AgentConfig } from "../../../core/config.ts";
import type { ControlClient } from "../../../core/control/client.ts";
import { errorFromBody } from "../../../core/control/errors.ts";
import { HandlerError } from "../../../core/errors.ts";
import { statePaths } from "../../../core/state-paths.ts";
import { isTerminal, writeStderr } from "../../../core/stdio.ts";
import type { Progress, ScanReport } from "./service.ts";

/** Which path a scan took: the running agent's scanner, or one this process started. */
export type ScanVia = "agent" | "offline";

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/**
 * A one-line progress bar on stderr (a terminal), redrawn at most ten times a second. It writes
 * through core/stdio.ts like the results, so the bar is cleared before they are printed; only the
 * terminal's width is read from the node stream.
 */
export function progressBar(
  stream: { columns?: number; write(text: string): void } = {
    get columns() {
      return process.stderr.columns;
    },
    write: writeStderr,
  },
): {
  update(p: Progress): void;
  clear(): void;
} {
  let last = 0;
  let drawn = false;
  const width = () => Math.max(40, Math.min(stream.columns ?? 80, 160));
  return {
    update(p) {
      const now = performance.now();
      if (p.phase === "scanning" && now - last < 100) return;
      last = now;
      const frac =
        p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.filesTotal > 0 ? p.filesDone / p.filesTotal : 1;
      const barWidth = 24;
      const filled = Math.round(frac * barWidth);
      const head = `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${p.filesDone}/${p.filesTotal} ${formatBytes(p.bytesDone)}`;
      const room = width() - head.length - 3;
      const cur = p.current
        ? ` ${p.current.length > room ? `…${p.current.slice(-(room - 1))}` : p.current}`
        : "";
      stream.write(`\r\u001b[2K${head}${room > 8 ? cur : ""}`);
      drawn = true;
    },
    clear() {
      if (drawn) stream.write("\r\u001b[2K");
      drawn = false;
    },
  };
}

export function renderScanReport(r: ScanReport): string {
  const lines: string[] = [];
  for (const d of r.detections) {
    const where = d.path.length ? `${d.target}//${d.path.join("/")}` : d.target;
    const notes: string[] = [];
    if (d.verdict !== "malware") notes.push(d.verdict);
    if (d.live)
      notes.push(
        `live: ${d.live.status}${d.live.verdict ? ` ${d.live.verdict}` : ""}${d.live.reason ? ` (${d.live.reason})` : ""}`,
      );
    if (d.reputation) notes.push(`reputation ${d.reputation.band}`);
    if (d.sample) notes.push(`sample ${d.sample.status}`);
    if (d.detail) notes.push(d.detail);
    lines.push(
      `${where}: ${d.name} ${d.verdict === "ignored" ? "IGNORED" : "FOUND"}${notes.length ? ` (${notes.join("; ")})` : ""}`,
    );
  }
  for (const l of r.limits)
    lines.push(
      `${l.path.length ? `${l.target}//${l.path.join("/")}` : l.target}: not fully scanned: ${l.limit} (${l.detail})`,
    );
  for (const e of r.errors) lines.push(`${e.path}: error ${e.code}: ${e.message}`);
  const standing = r.detections.length - r.ignored;
  lines.push(
    `scanned ${r.objects} object${r.objects === 1 ? "" : "s"}, ${formatBytes(r.bytes)} in ${(r.durationMs / 1000).toFixed(2)} s: ` +
      `${standing} detection${standing === 1 ? "" : "s"}${r.ignored ? `, ${r.ignored} ignored by Live Protection` : ""}` +
      `${r.errors.length ? `, ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}` : ""}`,
  );
  return lines.join("\n");
}

async function scanOnline(
  client: ControlClient,
  stateDir: string,
  body: unknown,
  onProgress?: (p: Progress) => void,
): Promise<ScanReport> {
  const token = readFileSync(statePaths(stateDir).controlToken, "utf8").trim();
  const init: RequestInit & { unix?: string } = {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/x-ndjson",
    },
    body: JSON.stringify(body),
    ...(client.socket ? { unix: client.socket } : {}),
  };
  const res = await fetch(`${client.socket ? "http://localhost" : client.url}/v1/scan`, init);
  if (!res.ok || !res.body) {
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: errorFromBody reports the status.
    }
    throw errorFromBody(parsed, res.status);
  }
  let buffered = "";
  const decoder = new TextDecoder();
  let report: ScanReport | undefined;
  const handle = (line: string) => {
    if (!line.trim()) return;
    const msg = JSON.parse(line) as {
      type: string;
      report?: ScanReport;
      error?: { code: string; message: string };
    } & Progress;
    if (msg.type === "progress") onProgress?.(msg);
    else if (msg.type === "report") report = msg.report;
    else if (msg.type === "error") throw errorFromBody({ error: msg.error }, 500);
  };
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      handle(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
    }
  }
  handle(buffered);
  if (!report) throw new HandlerError("HND_DATASETA_NO_REPORT", "the agent ended the scan without a report");
  return report;
}

export default defineCommand({
  meta: {
    name: "scan",
    description: "Scan files, directories or a process's memory (exit 1 when something is found)",
  },
  args: {
    ...agentArgs,
    paths: { type: "positional", required: false, description: "files or directories (recursive)" },
    pid: {
      type: "string",
      valueHint: "PID",
      description: "scan the readable memory of this process instead",
    },
    quiet: { type: "boolean", default: false, description: "no progress bar" },
    "all-matches": {
      type: "boolean",
      default: false,
      description: "report every signature that matches an object, not only the first (clamscan --allmatch)",
    },
  },
  async run({ args }) {
    const paths = (args._ as string[]).map((p) => resolve(p));
    const pid = args.pid === undefined ? undefined : Number(args.pid);
    if (pid !== undefined && (!Number.isInteger(pid) || pid <= 0))
      throw new UsageError("CLI_USAGE", "--pid takes a process id");
    if (pid !== undefined && paths.length) throw new UsageError("CLI_USAGE", "give paths or --pid, not both");
    if (pid === undefined && paths.length === 0)
      throw new UsageError("CLI_USAGE", "give at least one path, or --pid PID");
    if (pid === process.pid)
      throw new UsageError(
        "CLI_USAGE",
        "refusing to scan this scanner's own memory (it holds the signatures)",
      );

    const bar = !args.json && !args.quiet && isTerminal(2) ? progressBar() : undefined;
    const onProgress = bar ? (p: Progress) => bar.update(p) : undefined;
    // The offline machinery (config schemas, the in-process agent, the scan runtime) loads only when
    // no agent answers. With --state alone the state dir is known without reading a config: the
    // flag wins over any config's stateDir, and a running agent scans with its own config.
    const session = () => import("../../../core/cli/agent/session.ts");
    const stateOnly = args.state !== undefined && args.config === undefined;
    const config: AgentConfig | undefined = stateOnly ? undefined : (await session()).loadAgentConfig(args);
    const stateDir = config?.stateDir ?? resolve(args.state!);
    const allMatches = args["all-matches"] === true;
    let report: ScanReport;
    let via: ScanVia;
    try {
      const client = await connectIfRunning(stateDir);
      if (client) {
        via = "agent";
        report = await scanOnline(
          client,
          stateDir,
          pid !== undefined ? { pid, allMatches } : { paths, allMatches },
          onProgress,
        );
      } else {
        via = "offline";
        const [{ loadAgentConfig, withOfflineAgent }, { createScanRuntime }] = await Promise.all([
          session(),
          import("./runtime.ts"),
        ]);
        report = await withOfflineAgent(
          config ?? loadAgentConfig(args),
          async (agent) => {
            // The effective config (policy overlays and flag gates from state.json), as a running agent has it.
            const rt = await createScanRuntime(
              { config: agent.effective.current(), api: agent, events: agent.events },
              { background: false },
            );
            return pid !== undefined
              ? rt.service.scanProcess(pid, { onProgress, allMatches })
              : rt.service.scanPaths(paths, { onProgress, allMatches });
          },
          // Only the scanner host runs handler code (DatasetA, reputation, ML), and it imports its
          // own: this process needs manifests, and no other group's host. The effective config is
          // the one the last agent applied (persisted), so the policy contributors stay unloaded too.
          { deferHandlerCode: true, groups: ["scanner"], applyEffective: false },
        );
      }
    } finally {
      bar?.clear();
    }
    if (args.json) printJson({ ...report, via });
    else printText(renderScanReport(report));
    const notLoaded = report.errors.find((e) => e.code === "HND_NOT_LOADED");
    if (notLoaded && report.objects === 0) {
      if (!args.json) printErr("no scanner content (DatasetA) is installed: run `agent update` first");
      process.exitCode = EXIT.CONTENT;
    } else if (report.found) process.exitCode = EXIT.FOUND;
    else if (report.objects === 0 && report.errors.length > 0) process.exitCode = EXIT.USAGE;
    return report;
  },
});
