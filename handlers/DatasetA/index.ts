/**
 * The DatasetA content handler: the primary content scanner. It runs in the
 * `scanner` group with no filesystem and no network access — requesters
 * (the supervisor, the CLI) read files or process memory themselves and send
 * the bytes. Payload: ClamAV-compatible `.hdb`/`.hsb`/`.ndb` files and an
 * optional `lookup.txt` (docs/scanning.md).
 *
 * API (JSON plus Uint8Array, so it crosses the host-process boundary):
 *   scan  { bytes, name?, limits? }            → ScanOutcome   (objects ≤ 16 MiB)
 *   scanMany { items: [{ bytes, name? }], limits? } → { outcomes: ScanOutcome[] }
 *         (many small objects in one call: on-access batches; ≤ 256 items, ≤ 16 MiB together)
 *   begin { name?, limits? } → { session }; chunk { session, bytes } → { received };
 *   end   { session } → ScanOutcome;  abort { session }           (any size)
 *   info  {} → dataset statistics
 */

import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { datasetFromSources, sourcesFromView } from "./dataset.ts";
import { type Dataset, type DatasetStats, DEFAULT_LIMITS, type ScanOutcome } from "./engine.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { MAX_CHUNK_BYTES, SessionTable } from "./session.ts";

export { DEFAULT_LIMITS, type ScanLimits, type ScanOutcome } from "./engine.ts";
export { MAX_CHUNK_BYTES } from "./session.ts";

export const LimitsSchema = lazySchema(() =>
  z.partial(
    z.strictObject({
      maxDepth: z.int().check(z.gte(0), z.lte(64)),
      maxFiles: z.int().check(z.gte(0), z.lte(1_000_000)),
      maxMemberBytes: z.int().check(z.gte(0), z.lte(2 ** 40)),
      maxScanBytes: z.int().check(z.gte(0), z.lte(2 ** 42)),
      maxRatio: z.number().check(z.gte(1), z.lte(1e9)),
      memoryBytes: z.int().check(z.gte(0), z.lte(1024 * 1024 * 1024)),
      verifyBudget: z.int().check(z.gte(1000), z.lte(1e10)),
      firstMatch: z.boolean(),
    }),
  ),
);

const Bytes = lazySchema(() => z.instanceof(Uint8Array));
const Name = lazySchema(() => z._default(z.string().check(z.maxLength(4096)), ""));
export const ScanArgs = lazySchema(() =>
  z.strictObject({
    bytes: Bytes.check(
      z.refine((b) => b.length <= MAX_CHUNK_BYTES, `at most ${MAX_CHUNK_BYTES} bytes; use begin/chunk/end`),
    ),
    name: Name,
    limits: z._default(LimitsSchema, {}),
  }),
);
export const SCAN_MANY_ITEMS = 256;
export const ScanManyArgs = lazySchema(() =>
  z.strictObject({
    items: z.array(z.strictObject({ bytes: Bytes, name: Name })).check(
      z.minLength(1),
      z.maxLength(SCAN_MANY_ITEMS),
      z.refine(
        (items) => items.reduce((n, i) => n + i.bytes.length, 0) <= MAX_CHUNK_BYTES,
        `at most ${MAX_CHUNK_BYTES} bytes together`,
      ),
    ),
    limits: z._default(LimitsSchema, {}),
  }),
);
export const BeginArgs = lazySchema(() =>
  z.strictObject({ name: Name, limits: z._default(LimitsSchema, {}) }),
);
export const ChunkArgs = lazySchema(() =>
  z.strictObject({ session: z.string().check(z.regex(/^[0-9a-f]{24}$/)), bytes: Bytes }),
);
export const SessionArgs = lazySchema(() =>
  z.strictObject({ session: z.string().check(z.regex(/^[0-9a-f]{24}$/)) }),
);

function parse<T>(schema: z.ZodMiniType<T>, method: string, args: unknown): T {
  const r = schema.safeParse(args ?? {});
  if (!r.success)
    throw new HandlerError("HND_DATASETA_BAD_ARGS", `DatasetA ${method}: ${z.prettifyError(r.error)}`);
  return r.data;
}

export interface LoadedDataset {
  dataset: Dataset;
  sessions: SessionTable;
  workDir: string;
  version: number;
  loadMs: number;
  scans: number;
}

export interface DatasetInfo extends DatasetStats {
  version: number;
  loadMs: number;
  scans: number;
  openSessions: number;
  [k: string]: unknown;
}

/** validate() builds the dataset; load() of the same version reuses it instead of building twice. */
let built: { key: string; dataset: Dataset; ms: number } | undefined;
const keyOf = (v: ContentView) => `${v.type}:${v.version}:${v.signingTime}`;

function build(view: ContentView): { dataset: Dataset; ms: number } {
  const t = performance.now();
  const dataset = datasetFromSources(sourcesFromView(view));
  return { dataset, ms: performance.now() - t };
}

export const datasetAHandler = defineParsedHandler<LoadedDataset>({
  manifest: parsedManifest(),

  validate(view) {
    const b = build(view);
    built = { key: keyOf(view), ...b };
  },

  load(view, caps) {
    const cached = built?.key === keyOf(view) ? built : undefined;
    built = undefined;
    const { dataset, ms } = cached ?? build(view);
    const sessions = new SessionTable(caps.workDir, 32 * 1024 * 1024);
    caps.log.info("dataset loaded", { version: view.version, loadMs: Math.round(ms), ...dataset.stats });
    return { dataset, sessions, workDir: caps.workDir, version: view.version, loadMs: ms, scans: 0 };
  },

  unload(l) {
    l.sessions.closeAll();
  },

  status(l): DatasetInfo {
    return info(l);
  },

  async call(l, method, args): Promise<unknown> {
    switch (method) {
      case "scan": {
        const a = parse(ScanArgs, method, args);
        return scan(l, a.bytes, a.name, a.limits);
      }
      case "scanMany": {
        const a = parse(ScanManyArgs, method, args);
        const outcomes: ScanOutcome[] = [];
        for (const item of a.items) outcomes.push(await scan(l, item.bytes, item.name, a.limits));
        return { outcomes };
      }
      case "begin": {
        const a = parse(BeginArgs, method, args);
        return { session: l.sessions.begin(a.name, a.limits) };
      }
      case "chunk": {
        const a = parse(ChunkArgs, method, args);
        const received = l.sessions.chunk(a.session, a.bytes);
        countReceived(a.bytes.length);
        return { received };
      }
      case "end": {
        const a = parse(SessionArgs, method, args);
        const { name, limits, data } = l.sessions.finish(a.session);
        return scan(l, data, name, limits, false);
      }
      case "abort": {
        const a = parse(SessionArgs, method, args);
        l.sessions.abort(a.session);
        return {};
      }
      case "info":
        return info(l);
      default:
        throw new HandlerError("HND_UNKNOWN_METHOD", `DatasetA has no method ${JSON.stringify(method)}`, {
          details: { methods: ["scan", "scanMany", "begin", "chunk", "end", "abort", "info"] },
        });
    }
  },
});

function info(l: LoadedDataset): DatasetInfo {
  return {
    version: l.version,
    loadMs: Math.round(l.loadMs * 10) / 10,
    scans: l.scans,
    openSessions: l.sessions.open,
    ...l.dataset.stats,
  };
}

/** Bytes received between two collections while the scanner is busy (see countReceived()). */
export const SCAN_GC_BYTES = 64 * 1024 * 1024;
let bytesSinceGc = 0;

/**
 * Every object arrives in frames outside the JS heap, which barely move JSC's
 * allocation-driven collector, and hosts run without Bun's GC timer
 * (core/host/idle-gc.ts collects once the host goes quiet): a tree scan left
 * every frame it received uncollected until the end (peak RSS). A collection
 * per SCAN_GC_BYTES received bounds that, for ~1 % of the scan's CPU time.
 */
function countReceived(n: number): void {
  bytesSinceGc += n;
  if (bytesSinceGc < SCAN_GC_BYTES) return;
  bytesSinceGc = 0;
  Bun.gc(true);
}

async function scan(
  l: LoadedDataset,
  data: Uint8Array,
  name: string,
  limits: object,
  count = true,
): Promise<ScanOutcome> {
  l.scans++;
  try {
    return await l.dataset.scan(data, {
      name,
      limits: { ...DEFAULT_LIMITS, ...limits },
      spillDir: l.workDir,
    });
  } finally {
    // A session's bytes were counted as its chunks arrived.
    if (count) countReceived(data.length);
  }
}

export default datasetAHandler;
