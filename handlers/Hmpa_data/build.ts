/**
 * The vendor-side source format: a text file with one thumbprint per line.
 * Blank lines and lines whose first non-blank character is "#" are skipped;
 * a "#" anywhere else is part of the thumbprint (thumbprints are opaque and
 * may contain one). Surrounding whitespace, CR of CRLF included, is trimmed.
 */
import { HandlerError } from "../../core/errors.ts";
import { isStorableThumbprint, MAX_THUMBPRINT_LENGTH, normalizeThumbprint } from "./format.ts";
import { buildAllowlist } from "./writer.ts";

/** Thumbprints of a text file, in file order, duplicates kept. Rejects over-long lines with their line number. */
export function parseThumbprintText(text: string, opts: { file?: string } = {}): string[] {
  const thumbprints: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!isStorableThumbprint(normalizeThumbprint(line))) {
      throw new HandlerError(
        "HND_HMPA_BAD_THUMBPRINT",
        `${opts.file ?? "thumbprints"}:${i + 1}: thumbprint longer than ${MAX_THUMBPRINT_LENGTH} characters`,
        { ...(opts.file ? { file: opts.file } : {}), details: { line: i + 1 } },
      );
    }
    thumbprints.push(line);
  }
  return thumbprints;
}

/** Builds `allowlist.bin` bytes from thumbprint text (see the module comment for the syntax). */
export function buildAllowlistFromText(text: string, opts: { file?: string } = {}): Uint8Array {
  return buildAllowlist(parseThumbprintText(text, opts));
}
