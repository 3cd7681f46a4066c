/**
 * One error family for the whole agent. Every error carries a stable `code`
 * (grep-able in logs, asserted in tests, documented in docs/error-codes.md)
 * and, where one exists, the file it concerns, so that a rejection always
 * names what was rejected and why.
 */
export type ErrorDetails = Record<string, unknown>;

export class OutpostError extends Error {
  readonly code: string;
  readonly file?: string;
  readonly details?: ErrorDetails;

  constructor(
    code: string,
    message: string,
    opts: { file?: string; cause?: unknown; details?: ErrorDetails } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.file = opts.file;
    this.details = opts.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      error: this.name,
      code: this.code,
      message: this.message,
      ...(this.file ? { file: this.file } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** Certificates, CMS signatures, trust roots. Codes: SIG_* */
export class SignatureError extends OutpostError {}
/** Package container and manifest problems (tar, digests, paths). Codes: PKG_* */
export class PackageError extends OutpostError {}
/** Repository index and transport problems. Codes: UPD_*, IDX_* */
export class UpdateError extends OutpostError {}
/** A content handler refused or failed content. Codes: HND_* */
export class HandlerError extends OutpostError {}
/** Configuration and policy problems. Codes: CFG_* */
export class ConfigError extends OutpostError {}
/** The local content store. Codes: STORE_* */
export class StoreError extends OutpostError {}
/** The IPS packet path: queue, packet-filter rules, self-disable. Codes: IPS_* */
export class IpsError extends OutpostError {}
/** `agent install` / `uninstall` and CRT (incompatible-software removal). Codes: INST_*, CRT_* */
export class InstallError extends OutpostError {}

export function isOutpostError(e: unknown): e is OutpostError {
  return e instanceof OutpostError;
}

/** Normalises anything thrown into a code + message pair for logs and status. */
export function describeError(e: unknown): { code: string; message: string; file?: string } {
  if (e instanceof OutpostError)
    return { code: e.code, message: e.message, ...(e.file ? { file: e.file } : {}) };
  if (e instanceof Error) return { code: "INTERNAL", message: e.message };
  return { code: "INTERNAL", message: String(e) };
}
