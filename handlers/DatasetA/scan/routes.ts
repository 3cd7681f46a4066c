/**
 * Control-plane routes of scanning and reputation (RouteExtension, mounted
 * under /v1 by `agent run`):
 *
 *   POST /v1/scan                     application/octet-stream body: scan these bytes (≤ the body limit)
 *                                     JSON {"paths": [...]} | {"path": "..."} | {"pid": N}: the agent reads them
 *                                     Accept: application/x-ndjson → progress lines, then the report
 *   GET  /v1/reputation/{sha256}      LocalRepData answer (?signer=<cert sha256> adds the signer list)
 *   GET  /v1/processes                running processes with their reputation tags
 *
 * The token in front of /v1 is readable only by the agent's user, so a
 * caller naming a path could have read that path itself.
 */
import { isAbsolute } from "node:path";
import { ControlError } from "../../../core/control/errors.ts";
import type { RouteExtension } from "../../../core/control/extensions.ts";
import { doc, named } from "../../../core/control/openapi-document.ts";
import { defineRoute, type OpenApiHono } from "../../../core/control/openapi-route.ts";
import { COMMON_ERRORS, errorResponses } from "../../../core/control/schemas.ts";
import { EXCLUSION_SCOPES } from "../../../core/exclusions-config.ts";
import { z } from "../../../core/schema/zod.ts";
import type { ProcessTag } from "../../LocalRepData/process-tagger.ts";
import { scanRuntimeOf } from "./runtime.ts";
import type { Progress, ScanReport, ScanService } from "./service.ts";

const ScanRequestSchema = z.union([
  z.strictObject({
    paths: z.array(z.string().check(z.minLength(1))).check(z.minLength(1), z.maxLength(10_000)),
    allMatches: z.optional(z.boolean()),
  }),
  z.strictObject({ path: z.string().check(z.minLength(1)), allMatches: z.optional(z.boolean()) }),
  z.strictObject({ pid: z.int().check(z.positive()), allMatches: z.optional(z.boolean()) }),
]);

const ReportSchema = named(
  "ScanReport",
  z.looseObject({
    targets: z.array(z.string()),
    objects: z.number(),
    bytes: z.number(),
    detections: z.array(z.looseObject({ name: z.string(), verdict: z.string(), target: z.string() })),
    ignored: z.number(),
    errors: z.array(z.looseObject({ path: z.string(), code: z.string() })),
    found: z.boolean(),
  }),
);

const scanRoute = defineRoute({
  method: "post",
  path: "/scan",
  tags: ["scanning"],
  summary: "Scan bytes, files, directory trees or a process's memory",
  description:
    "Body `application/octet-stream`: the bytes to scan (at most the control plane's body limit; name them with ?name=). " +
    'Body `application/json`: `{"paths": ["/abs/path", …]}`, `{"path": "/abs/path"}` or `{"pid": 1234}` — the agent reads them; add `"allMatches": true` to report every signature that matches an object (default: the first that stands, as clamscan). ' +
    "With `Accept: application/x-ndjson` the answer streams one JSON object per line: " +
    '`{"type":"progress",…}` and `{"type":"object",…}` while scanning, then `{"type":"report","report":…}`. ' +
    "409 when no DatasetA content is loaded; 503 when the scanning service is not running.",
  responses: {
    200: { description: "The scan report", content: { "application/json": { schema: ReportSchema } } },
    ...errorResponses(...COMMON_ERRORS, 400, 409, 413, 415, 503),
  },
});

const RepAnswerSchema = named(
  "Reputation",
  z.object({
    sha256: z.optional(z.string()),
    signer: z.optional(z.string()),
    score: z.nullable(z.number()),
    band: z.enum(["high", "medium", "low", "unknown"]),
    class: z.nullable(z.string()),
    source: z.nullable(z.enum(["hash", "signer"])),
    signerName: z.optional(z.string()),
  }),
);

const repRoute = defineRoute({
  method: "get",
  path: "/reputation/{sha256}",
  tags: ["reputation"],
  summary: "Reputation of a file by SHA-256 (and optionally its signer)",
  request: {
    params: z.object({
      sha256: doc(z.string().check(z.regex(/^[0-9a-fA-F]{64}$/)), {}),
    }),
    query: z.object({
      signer: z.optional(z.string().check(z.regex(/^[0-9a-fA-F]{64}$/))),
    }),
  },
  responses: {
    200: {
      description: "LocalRepData's answer",
      content: { "application/json": { schema: RepAnswerSchema } },
    },
    ...errorResponses(...COMMON_ERRORS, 400, 409),
  },
});

const ProcessSchema = named(
  "ProcessTag",
  z.object({
    pid: z.number(),
    exe: z.string(),
    sha256: z.nullable(z.string()),
    reputation: z.nullable(
      z.object({
        score: z.nullable(z.number()),
        band: z.string(),
        class: z.nullable(z.string()),
        source: z.nullable(z.string()),
      }),
    ),
    startTicks: z.number(),
    taggedAt: z.string(),
    error: z.optional(z.string()),
    excluded: doc(z.optional(z.array(z.enum(EXCLUSION_SCOPES))), {
      description: "Scopes in which an exclusion covers the process (docs/exclusions.md)",
    }),
  }),
);

const processesRoute = defineRoute({
  method: "get",
  path: "/processes",
  tags: ["reputation"],
  summary: "Running processes and the reputation they were tagged with at launch",
  responses: {
    200: {
      description: "Processes, by pid",
      content: {
        "application/json": { schema: z.object({ processes: z.array(ProcessSchema), tagging: z.boolean() }) },
      },
    },
    ...errorResponses(...COMMON_ERRORS),
  },
});

function service(api: object): ScanService {
  const rt = scanRuntimeOf(api);
  if (!rt) throw new ControlError("CTL_NOT_AVAILABLE", "the scanning service is not running in this agent");
  return rt.service;
}

async function parseScanRequest(
  req: Request,
): Promise<{ kind: "bytes"; bytes: Uint8Array } | z.infer<typeof ScanRequestSchema>> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/octet-stream")
    return { kind: "bytes", bytes: new Uint8Array(await req.arrayBuffer()) };
  if (type !== "application/json") {
    throw new ControlError(
      "CTL_UNSUPPORTED_MEDIA_TYPE",
      "send application/octet-stream (bytes) or application/json (paths or pid)",
    );
  }
  let json: unknown;
  try {
    json = await req.json();
  } catch (e) {
    throw new ControlError("CTL_BAD_REQUEST", `request body is not valid JSON: ${(e as Error).message}`);
  }
  const r = ScanRequestSchema.safeParse(json);
  if (!r.success) throw new ControlError("CTL_BAD_REQUEST", `scan request: ${z.prettifyError(r.error)}`);
  const paths = "paths" in r.data ? r.data.paths : "path" in r.data ? [r.data.path] : [];
  if (paths.some((p) => !isAbsolute(p)))
    throw new ControlError(
      "CTL_BAD_REQUEST",
      "paths must be absolute (the agent's working directory is not yours)",
    );
  return r.data;
}

export function scanRoutes(): RouteExtension {
  return {
    name: "scanning",
    mount(v1: OpenApiHono, { api }) {
      v1.openapi(scanRoute, (async (c: {
        req: { raw: Request; query(k: string): string | undefined };
        env?: { timeout?(req: Request, seconds: number): void };
      }) => {
        // A scan may run for minutes: lift Bun's idle timeout for this request only.
        c.env?.timeout?.(c.req.raw, 0);
        const req = await parseScanRequest(c.req.raw);
        const svc = service(api);
        const stream = (c.req.raw.headers.get("accept") ?? "").includes("application/x-ndjson");
        const run = (
          onProgress?: (p: Progress) => void,
          onObject?: (o: unknown) => void,
        ): Promise<ScanReport> => {
          if ("kind" in req) return svc.scanBytes(req.bytes, c.req.query("name") ?? "bytes");
          const allMatches = req.allMatches ?? false;
          if ("pid" in req) return svc.scanProcess(req.pid, { onProgress, allMatches });
          return svc.scanPaths("paths" in req ? req.paths : [req.path], { onProgress, onObject, allMatches });
        };
        if (!stream) return Response.json(await run());
        const enc = new TextEncoder();
        let last = 0;
        const body = new ReadableStream<Uint8Array>({
          async start(ctrl) {
            const line = (v: unknown) => ctrl.enqueue(enc.encode(`${JSON.stringify(v)}\n`));
            // Proxies and clients see a live stream even while one large object is being scanned.
            const keepAlive = setInterval(() => line({ type: "heartbeat" }), 5000);
            try {
              const report = await run(
                (p) => {
                  // At most ten progress lines a second: enough for a progress bar.
                  const now = performance.now();
                  if (p.phase !== "scanning" || now - last >= 100) {
                    last = now;
                    line({ type: "progress", ...p });
                  }
                },
                (o) => line({ type: "object", object: o }),
              );
              line({ type: "report", report });
            } catch (e) {
              const err = e as { code?: string; message?: string };
              line({
                type: "error",
                error: { code: err.code ?? "INTERNAL", message: err.message ?? String(e) },
              });
            } finally {
              clearInterval(keepAlive);
            }
            ctrl.close();
          },
        });
        return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
      }) as never);

      v1.openapi(repRoute, async (c) => {
        const { sha256 } = c.req.valid("param");
        const { signer } = c.req.valid("query");
        const answer = await api.call("LocalRepData", "lookup", {
          sha256: sha256.toLowerCase(),
          ...(signer ? { signer: signer.toLowerCase() } : {}),
        });
        return c.json(answer as z.infer<typeof RepAnswerSchema>, 200);
      });

      v1.openapi(processesRoute, (c) => {
        const tagger = scanRuntimeOf(api)?.tagger;
        const processes: ProcessTag[] = tagger?.list() ?? [];
        return c.json({ processes: processes as z.infer<typeof ProcessSchema>[], tagging: !!tagger }, 200);
      });
    },
  };
}
