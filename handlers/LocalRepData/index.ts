/**
 * The LocalRepData content handler: reputation by file SHA-256 and by
 * signer certificate, consulted when processes launch (process-tagger.ts,
 * in the supervisor) and for executables the scanner finds inside content.
 * Runs in the `scanner` group with no privileges; the payload is one file,
 * `reputation.bin` (format.ts), read in place.
 *
 * API: lookup { sha256?, signer? } → RepAnswer;
 *      lookupMany { items: [{ sha256?, signer? }] } → RepAnswer[];  info {} → counts
 * A listed file hash decides; otherwise a listed signer (the file's
 * Authenticode signer, already verified by the scanner) decides.
 */

import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { type Band, PAYLOAD_FILE } from "./format.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };
import { invalid, ReputationDb, validateReputation } from "./reader.ts";

export { PAYLOAD_FILE } from "./format.ts";

export const MAX_LOOKUP_MANY = 100_000;

const Hex64 = lazySchema(() => z.string().check(z.regex(/^[0-9a-fA-F]{64}$/, "a SHA-256 hex digest")));
export const LookupArgsSchema = lazySchema(() =>
  z
    .strictObject({ sha256: z.optional(Hex64), signer: z.optional(Hex64) })
    .check(z.refine((a) => a.sha256 !== undefined || a.signer !== undefined, "give sha256, signer or both")),
);
export const LookupManyArgsSchema = lazySchema(() =>
  z.strictObject({ items: z.array(LookupArgsSchema).check(z.maxLength(MAX_LOOKUP_MANY)) }),
);

export interface RepAnswer {
  sha256?: string;
  signer?: string;
  score: number | null;
  band: Band;
  class: string | null;
  /** Which list decided: the file hash, the signer, or neither. */
  source: "hash" | "signer" | null;
  signerName?: string;
}

export interface RepStatus {
  hashEntries: number;
  signerEntries: number;
  bytes: number;
  bytesPerEntry: number;
  loadMs: number;
  zeroCopy: boolean;
  [k: string]: unknown;
}

interface Loaded {
  db: ReputationDb;
  loadMs: number;
}

function payload(view: ContentView): Uint8Array {
  if (!view.files.includes(PAYLOAD_FILE)) {
    throw invalid(PAYLOAD_FILE, "missing-file", `missing from ${view.type} v${view.version}`);
  }
  return view.read(PAYLOAD_FILE);
}

function parse<T>(schema: z.ZodMiniType<T>, method: string, args: unknown): T {
  const r = schema.safeParse(args ?? {});
  if (!r.success)
    throw new HandlerError("HND_REP_BAD_ARGS", `LocalRepData ${method}: ${z.prettifyError(r.error)}`);
  return r.data;
}

export function answer(db: ReputationDb, q: { sha256?: string; signer?: string }): RepAnswer {
  const base = {
    ...(q.sha256 ? { sha256: q.sha256.toLowerCase() } : {}),
    ...(q.signer ? { signer: q.signer.toLowerCase() } : {}),
  };
  const byHash = q.sha256 ? db.byHash(q.sha256) : null;
  if (byHash) return { ...base, score: byHash.score, band: byHash.band, class: byHash.class, source: "hash" };
  const bySigner = q.signer ? db.bySigner(q.signer) : null;
  if (bySigner) {
    return {
      ...base,
      score: bySigner.score,
      band: bySigner.band,
      class: bySigner.class,
      source: "signer",
      signerName: bySigner.name,
    };
  }
  return { ...base, score: null, band: "unknown", class: null, source: null };
}

export const localRepDataHandler = defineParsedHandler<Loaded>({
  manifest: parsedManifest(),

  validate(view) {
    validateReputation(payload(view), { file: PAYLOAD_FILE });
  },

  load(view, caps) {
    const t = performance.now();
    const db = ReputationDb.from(payload(view), { file: PAYLOAD_FILE });
    const loadMs = performance.now() - t;
    caps.log.info("reputation loaded", {
      version: view.version,
      hashes: db.hashCount,
      signers: db.signerCount,
      loadMs,
    });
    return { db, loadMs };
  },

  status({ db, loadMs }): RepStatus {
    const entries = db.hashCount + db.signerCount;
    return {
      hashEntries: db.hashCount,
      signerEntries: db.signerCount,
      bytes: db.byteLength,
      bytesPerEntry: entries ? Math.round((db.byteLength / entries) * 100) / 100 : 0,
      loadMs: Math.round(loadMs * 1000) / 1000,
      zeroCopy: !db.copied,
    };
  },

  call({ db }, method, args): RepAnswer | RepAnswer[] | RepStatus {
    switch (method) {
      case "lookup":
        return answer(db, parse(LookupArgsSchema, method, args));
      case "lookupMany":
        return parse(LookupManyArgsSchema, method, args).items.map((q) => answer(db, q));
      default:
        throw new HandlerError("HND_UNKNOWN_METHOD", `LocalRepData has no method ${JSON.stringify(method)}`, {
          details: { methods: ["lookup", "lookupMany"] },
        });
    }
  },
});

export default localRepDataHandler;
