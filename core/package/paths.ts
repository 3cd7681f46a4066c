/**
 * The one definition of an acceptable path inside a package, shared by the
 * tar writer, the tar reader and the manifest schema so that nothing the
 * writer produces can be refused by the reader, and nothing the reader
 * accepts can escape the directory it is extracted into — on Linux or on a
 * Windows host (backslashes and drive letters are refused too).
 */

/** Why a path is refused; each maps to a distinct PKG_TAR_* code. */
export type PathProblem =
  | { code: "PKG_TAR_BAD_PATH"; reason: string }
  | { code: "PKG_TAR_ABSOLUTE_PATH"; reason: string }
  | { code: "PKG_TAR_TRAVERSAL"; reason: string };

/** Longest path a ustar header can carry: prefix (155) + "/" + name (100), minus one for our margin. */
export const MAX_PATH_BYTES = 255;

const encoder = new TextEncoder();

export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/**
 * Checks a slash-separated relative path (no trailing slash) is canonical:
 * not empty, not absolute, no `..`, no `.` or empty components, no
 * backslashes or control characters. Returns the problem, or undefined.
 */
export function pathProblem(path: string): PathProblem | undefined {
  if (path.length === 0) return { code: "PKG_TAR_BAD_PATH", reason: "empty path" };
  // Control characters (C0, DEL and C1) break logs and terminals; a backslash is a separator on Windows hosts.
  if (/[\u0000-\u001f\u007f-\u009f\\]/.test(path)) {
    return { code: "PKG_TAR_BAD_PATH", reason: "control character or backslash in path" };
  }
  // Bidi overrides, embeddings and isolates make a listed name read differently from what is on disk
  // ("Trojan Source"): payload.exe can be shown as exe.daolyap.
  if (/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/.test(path)) {
    return { code: "PKG_TAR_BAD_PATH", reason: "bidirectional control character in path" };
  }
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) {
    return { code: "PKG_TAR_ABSOLUTE_PATH", reason: "absolute path" };
  }
  const parts = path.split("/");
  if (parts.includes("..")) return { code: "PKG_TAR_TRAVERSAL", reason: "'..' component" };
  if (parts.some((p) => p === "" || p === ".")) {
    return { code: "PKG_TAR_BAD_PATH", reason: "empty or '.' component (path is not canonical)" };
  }
  return undefined;
}

/**
 * Orders paths by their UTF-8 bytes, the order `LC_ALL=C sort` gives, so the
 * manifest written by packDirectory and the one written by hand agree.
 */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
