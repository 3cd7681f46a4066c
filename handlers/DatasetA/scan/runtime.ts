/**
 * Assembles the supervisor-side scanning features from the agent config:
 * the scan requester, the SXL client, the sample queue and uploader, and
 * the process tagger. `agent run` starts them as one service
 * (`scanningService`) beside the agent; `agent scan` without a running agent
 * builds the same parts in-process (`createScanRuntime`), minus the
 * background ones.
 */

import { join } from "node:path";
import { attachment } from "../../../core/agent/attachments.ts";
import type { AgentEvent } from "../../../core/agent/events.ts";
import type { AgentConfig } from "../../../core/config.ts";
import type { ExclusionMatcher } from "../../../core/exclusions/matcher.ts";
import type { Lease } from "../../../core/host/shared-transfer.ts";
import { log } from "../../../core/log.ts";
import type { MlConfig } from "../../../core/ml-config.ts";
import { sensorsOf } from "../../../core/sensors/service.ts";
import { ProcessTagger } from "../../LocalRepData/process-tagger.ts";
import { MlScoring } from "../../MLModel/scan-hook.ts";
import { loadVendorPublicKey } from "../samples/envelope.ts";
import { SampleQueue, SampleUploader } from "../samples/queue.ts";
import { parseResolver, SxlClient } from "../sxl/client.ts";
import { type CallHandler, ScanService } from "./service.ts";

const logger = log.child({ component: "scanning" });

export interface ScanRuntime {
  service: ScanService;
  sxl?: SxlClient;
  queue?: SampleQueue;
  uploader?: SampleUploader;
  tagger?: ProcessTagger;
}

export interface RuntimeContext {
  config: AgentConfig;
  api: {
    call: CallHandler;
    /** The scanner's shared transfer region, when its host has one (core/host/shared-transfer.ts). */
    transfer?(type: string): { lease(bytes: number): Lease | undefined } | undefined;
    rollback?(type: string): Promise<unknown>;
    exclusions?: { readonly matcher: ExclusionMatcher };
  };
  events?: {
    emit(type: string, fields?: Record<string, unknown>): unknown;
    subscribe?(fn: (e: AgentEvent) => void): () => void;
  };
  /** The ML mode now, when it follows the effective config (effective.ts); default: config.ml.mode. */
  mlMode?: () => MlConfig["mode"];
}

export function samplesDir(stateDir: string): string {
  return join(stateDir, "samples");
}

/** The parts, not started. `background` adds the uploader and the process tagger. */
export async function createScanRuntime(
  ctx: RuntimeContext,
  opts: { background: boolean },
): Promise<ScanRuntime> {
  const lp = ctx.config.liveProtection;
  const call: CallHandler = (type, method, args) => ctx.api.call(type, method, args);
  const emit = (type: string, fields: Record<string, unknown>) => ctx.events?.emit(type, fields);
  const sxl = lp.lookups
    ? new SxlClient({
        zone: lp.zone,
        resolver: parseResolver(lp.resolver),
        timeoutMs: lp.timeoutMs,
        attempts: lp.attempts,
        ratePerSecond: lp.ratePerSecond,
        burst: lp.burst,
        cacheSize: lp.cacheSize,
      })
    : undefined;
  let queue: SampleQueue | undefined;
  let uploader: SampleUploader | undefined;
  if (lp.lookups && lp.samples && lp.vendorKey && lp.sampleUrl) {
    queue = new SampleQueue({
      dir: samplesDir(ctx.config.stateDir),
      vendorKey: await loadVendorPublicKey(lp.vendorKey),
    });
    if (opts.background) uploader = new SampleUploader(queue, { url: lp.sampleUrl });
  }
  const tagger =
    opts.background && ctx.config.reputation.processTagging
      ? new ProcessTagger({
          call,
          pollIntervalMs: ctx.config.reputation.pollIntervalMs,
          emit,
          ...(ctx.api.exclusions ? { exclusions: () => ctx.api.exclusions!.matcher } : {}),
        })
      : undefined;
  const service = new ScanService({
    call,
    ...(ctx.api.transfer ? { transfer: () => ctx.api.transfer?.("DatasetA") } : {}),
    policy: { lookups: lp.lookups, samples: lp.lookups && lp.samples },
    ...(ctx.api.exclusions ? { exclusions: () => ctx.api.exclusions!.matcher } : {}),
    ...(sxl ? { sxl } : {}),
    ...(queue ? { samples: { queue, ...(uploader ? { uploader } : {}) } } : {}),
    emit,
    ml: new MlScoring({
      call,
      emit,
      rollback: () => ctx.api.rollback?.("MLModel") ?? Promise.resolve(),
      mode: ctx.mlMode ?? (() => ctx.config.ml.mode),
    }),
  });
  return { service, sxl, queue, uploader, tagger };
}

/** The runtime running beside each agent (what the control-plane routes use). */
const runtimesByAgent = attachment<ScanRuntime>();

/** The scanning runtime `agent run` started beside `agent`, if any. */
export function scanRuntimeOf(agent: object): ScanRuntime | undefined {
  return runtimesByAgent.get(agent);
}

/** For tests and embedders that assemble the control plane themselves. */
export function attachScanRuntime(agent: object, runtime: ScanRuntime): () => void {
  runtimesByAgent.set(agent, runtime);
  return () => runtimesByAgent.delete(agent, runtime);
}

/** The long-running service `agent run` starts after the agent and stops before it. */
export function scanningService(ctx: RuntimeContext): {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
} {
  let runtime: ScanRuntime | undefined;
  let unsubscribe: (() => void) | undefined;
  let unsubscribeBus: (() => void) | undefined;
  return {
    name: "scanning",
    async start() {
      runtime = await createScanRuntime(ctx, { background: true });
      runtime.uploader?.start();
      // Kernel exec events (core/sensors) replace the /proc sweep; it runs only without them.
      const bus = sensorsOf(ctx.api)?.bus;
      const tagger = runtime.tagger;
      if (tagger && bus) {
        unsubscribeBus = bus.subscribe({
          name: "ProcessTagger",
          types: ["process.start", "process.exit"],
          maxQueue: 20_000,
          deliver: async (batch) => {
            for (const e of batch)
              if (e.type === "process.exit" && typeof e.pid === "number") tagger.forget(e.pid);
            await tagger.ingest(batch.filter((e) => e.type === "process.start"));
          },
        });
      } else tagger?.start();
      // New reputation data changes every tag: re-tag running processes against it.
      unsubscribe = ctx.events?.subscribe?.((e) => {
        if (
          (e.type === "content-installed" || e.type === "content-rolled-back") &&
          e.contentType === "LocalRepData"
        ) {
          runtime?.tagger?.invalidate();
        }
      });
      runtimesByAgent.set(ctx.api, runtime);
      logger.info("scanning service started", {
        lookups: !!runtime.sxl,
        samples: !!runtime.queue,
        processTagging: !!runtime.tagger,
      });
    },
    async stop() {
      unsubscribe?.();
      unsubscribeBus?.();
      if (runtime) runtimesByAgent.delete(ctx.api, runtime);
      await runtime?.tagger?.stop();
      await runtime?.uploader?.stop();
      runtime?.sxl?.close();
    },
  };
}
