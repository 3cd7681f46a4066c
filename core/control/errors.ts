/**
 * The control plane's one error vocabulary. Every failure crosses HTTP as
 * `{ "error": { code, message, file? } }` with a status derived from the code
 * family, and the client turns that body back into the same OutpostError
 * subclass, so a CLI talking to a running agent reports exactly what an
 * in-process call would have thrown.
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  ConfigError,
  HandlerError,
  OutpostError,
  PackageError,
  SignatureError,
  StoreError,
  UpdateError,
} from "../errors.ts";

/** Control plane and CLI transport problems. Codes: CTL_* */
export class ControlError extends OutpostError {}

export interface ErrorBody {
  error: { code: string; message: string; file?: string };
}

/** Status for an error code. Order matters: specific codes before their family. */
export function httpStatusFor(code: string): ContentfulStatusCode {
  if (code === "CTL_UNAUTHORIZED") return 401;
  if (code === "CTL_NOT_FOUND" || code === "HND_UNKNOWN_TYPE" || code === "HND_UNKNOWN_METHOD") return 404;
  if (code === "CTL_BODY_TOO_LARGE") return 413;
  if (code === "CTL_FORBIDDEN_HOST" || code === "CTL_PEER_REFUSED") return 403;
  if (code === "CTL_UNSUPPORTED_MEDIA_TYPE") return 415;
  if (code === "CTL_TOO_MANY_STREAMS" || code === "CTL_NOT_AVAILABLE") return 503;
  if (code === "HND_NO_API") return 404;
  // Handlers name argument errors HND_<TYPE>_BAD_ARGS: the caller's mistake, not the agent's.
  if (code === "CTL_BAD_REQUEST" || code.startsWith("CFG_") || /^HND_\w*BAD_ARGS$/.test(code)) return 400;
  if (code === "STORE_NO_LKG" || code === "HND_NOT_LOADED" || code === "AGENT_LOCKED") return 409;
  if (/^(UPD|IDX|SIG|PKG)_/.test(code)) return 422;
  return 500;
}

/** Codes for the HTTP errors Hono and its validators raise themselves (HTTPException). */
export function codeForHttpStatus(status: number): string {
  if (status === 413) return "CTL_BODY_TOO_LARGE";
  if (status === 415) return "CTL_UNSUPPORTED_MEDIA_TYPE";
  if (status === 400) return "CTL_BAD_REQUEST";
  if (status === 401) return "CTL_UNAUTHORIZED";
  if (status === 404) return "CTL_NOT_FOUND";
  return `CTL_HTTP_${status}`;
}

export function errorBody(e: unknown): ErrorBody {
  if (e instanceof OutpostError) {
    return { error: { code: e.code, message: e.message, ...(e.file ? { file: e.file } : {}) } };
  }
  // Internal errors keep their message (the caller is an administrator on
  // this host) but never a stack trace.
  const message = e instanceof Error ? e.message : String(e);
  return { error: { code: "INTERNAL", message } };
}

const CLASS_BY_PREFIX: [string, new (...a: ConstructorParameters<typeof OutpostError>) => OutpostError][] = [
  ["CFG_", ConfigError],
  ["HND_", HandlerError],
  ["STORE_", StoreError],
  ["UPD_", UpdateError],
  ["IDX_", UpdateError],
  ["SIG_", SignatureError],
  ["PKG_", PackageError],
  ["CTL_", ControlError],
];

/** Rebuilds the thrower's error from a server error body, keeping its code and class. */
export function errorFromBody(body: unknown, status: number): OutpostError {
  const parsed = (body as Partial<ErrorBody> | null)?.error;
  if (!parsed || typeof parsed.code !== "string" || typeof parsed.message !== "string") {
    return new ControlError(
      "CTL_BAD_RESPONSE",
      `control plane answered HTTP ${status} without an error body`,
      {
        details: { status },
      },
    );
  }
  const Class = CLASS_BY_PREFIX.find(([prefix]) => parsed.code!.startsWith(prefix))?.[1] ?? OutpostError;
  return new Class(parsed.code, parsed.message, {
    ...(typeof parsed.file === "string" ? { file: parsed.file } : {}),
    details: { status },
  });
}
