/**
 * Signature files of a DatasetA package: a compatible subset of ClamAV's
 * `.hdb` / `.hsb` (file hashes) and `.ndb` (body patterns), plus
 * `lookup.txt`, the list of signature names whose detections trigger a Live
 * Protection lookup. Every line error names the file and line; the grammar
 * is in docs/scanning.md.
 */
import { HandlerError } from "../../core/errors.ts";
import { compilePattern, type Pattern, PatternError } from "../_shared/matcher/pattern.ts";

export type HashAlgo = "md5" | "sha1" | "sha256";

export interface HashSignature {
  algo: HashAlgo;
  /** Lower-case hex. */
  hash: string;
  /** Exact file size, or null for ClamAV's `*` (any size). */
  size: number | null;
  name: string;
  lookup: boolean;
  source: string;
}

/** ClamAV target types this scanner supports (docs/scanning.md). */
export const TARGET_TYPES = { 0: "any", 1: "pe", 6: "elf", 9: "macho", 10: "pdf" } as const;
export type TargetCode = keyof typeof TARGET_TYPES;
export type TargetKind = (typeof TARGET_TYPES)[TargetCode];

export type OffsetSpec =
  | { kind: "any" }
  | { kind: "abs"; n: number; shift: number }
  | { kind: "eof"; n: number; shift: number }
  | { kind: "ep"; n: number; shift: number }
  | { kind: "section"; index: number; n: number; shift: number }
  | { kind: "last-section"; n: number; shift: number }
  | { kind: "section-entire"; index: number };

export interface BodySignature {
  name: string;
  target: TargetKind;
  offset: OffsetSpec;
  pattern: Pattern;
  lookup: boolean;
  source: string;
}

export const SIGNATURE_EXTENSIONS = [".hdb", ".hsb", ".ndb"] as const;

/**
 * The functionality level this engine declares: ClamAV 1.4's (what
 * `cl_retflevel()` of Debian's libclamav 1.4 returns). A signature whose
 * `min_flevel` is above it, or whose `max_flevel` is below it, is skipped at
 * load exactly as ClamAV 1.4 skips it — so the same signature files give the
 * same detections in both — and counted in the dataset's stats.
 */
export const ENGINE_FLEVEL = 216;

/** True when a signature's `[min[:max]]` functionality levels admit ENGINE_FLEVEL. */
export function flevelAdmits(min: string | undefined, max: string | undefined): boolean {
  if (min !== undefined && min !== "" && Number(min) > ENGINE_FLEVEL) return false;
  if (max !== undefined && max !== "" && Number(max) < ENGINE_FLEVEL) return false;
  return true;
}

/** Counts what parsing skipped (functionality levels outside this engine's). */
export interface ParseTally {
  flevelSkipped: number;
  /** Their names: lookup.txt may name them (they exist, just not for this engine level). */
  skippedNames?: Set<string>;
}
export const LOOKUP_FILE = "lookup.txt";
/** ClamAV names are printable ASCII without ':'; we also cap the length. */
const NAME_RE = /^[\x21-\x39\x3b-\x7e]{1,200}$/;
const MAX_OFFSET = 2 ** 40;

export function signatureError(file: string, line: number, message: string): HandlerError {
  return new HandlerError("HND_DATASETA_INVALID", `${file}:${line}: ${message}`, {
    file,
    details: { line },
  });
}

function parseCount(text: string, file: string, line: number, what: string): number {
  if (!/^[0-9]{1,13}$/.test(text)) throw signatureError(file, line, `${what} '${text}' is not a number`);
  const n = Number(text);
  if (n > MAX_OFFSET) throw signatureError(file, line, `${what} ${n} is too large`);
  return n;
}

export function parseOffset(text: string, file: string, line: number): OffsetSpec {
  if (text === "*") return { kind: "any" };
  const [base, shiftText, extra] = text.split(",");
  if (extra !== undefined || base === undefined) throw signatureError(file, line, `bad offset '${text}'`);
  const shift = shiftText === undefined ? 0 : parseCount(shiftText, file, line, "offset shift");
  const num = (t: string, what = "offset") => parseCount(t, file, line, what);
  const abs = base.match(/^[0-9]+$/);
  if (abs) return { kind: "abs", n: num(abs[0]), shift };
  const eof = base.match(/^EOF-([0-9]+)$/);
  if (eof) return { kind: "eof", n: num(eof[1]!), shift };
  const ep = base.match(/^EP([+-])([0-9]+)$/);
  if (ep) return { kind: "ep", n: ep[1] === "-" ? -num(ep[2]!) : num(ep[2]!), shift };
  const sec = base.match(/^S([0-9]+)\+([0-9]+)$/);
  if (sec) return { kind: "section", index: num(sec[1]!, "section"), n: num(sec[2]!), shift };
  const last = base.match(/^SL\+([0-9]+)$/);
  if (last) return { kind: "last-section", n: num(last[1]!), shift };
  const entire = base.match(/^SE([0-9]+)$/);
  if (entire && shiftText === undefined) return { kind: "section-entire", index: num(entire[1]!, "section") };
  throw signatureError(
    file,
    line,
    `unsupported offset '${text}' (supported: *, n, n,m, EOF-n, EP±n, Sx+n, SL+n, SEx)`,
  );
}

function* lines(text: string): Generator<[number, string]> {
  let n = 0;
  for (const raw of text.split("\n")) {
    n++;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line === "" || line.startsWith("#")) continue;
    yield [n, line];
  }
}

/**
 * Calls `fn(start, end, lineNumber)` for each line of `bytes` that holds a
 * signature (not blank, not a `#` comment), without splitting the file into
 * strings: a million-line file stays one buffer. `end` excludes `\r\n`.
 */
export function forEachLine(bytes: Uint8Array, fn: (start: number, end: number, line: number) => void): void {
  const n = bytes.length;
  let start = 0;
  let line = 0;
  while (start < n) {
    let nl = bytes.indexOf(10, start);
    if (nl < 0) nl = n;
    line++;
    let end = nl;
    if (end > start && bytes[end - 1] === 13) end--;
    if (end > start && bytes[start] !== 35) fn(start, end, line);
    start = nl + 1;
  }
}

const HASH_LENGTHS: Record<number, HashAlgo> = { 32: "md5", 40: "sha1", 64: "sha256" };

/** A parsed line, or the name of a signature skipped for its functionality level. */
export type Parsed<T> = { sig: T; skipped?: undefined } | { sig?: undefined; skipped: string };

/** One `.hdb` (MD5 only) / `.hsb` (MD5, SHA-1 or SHA-256) line: `hash:size:name[:min_flevel]`. */
export function parseHashLine(line: string, file: string, n: number): Parsed<Omit<HashSignature, "lookup">> {
  const f = line.split(":");
  if (f.length < 3 || f.length > 4) {
    throw signatureError(file, n, `expected hash:size:name[:flevel], got ${f.length} fields`);
  }
  const [hashText, sizeText, name, flevel] = f as [string, string, string, string | undefined];
  const hash = hashText.toLowerCase();
  const algo = /^[0-9a-f]+$/.test(hash) ? HASH_LENGTHS[hash.length] : undefined;
  if (!algo) throw signatureError(file, n, "hash must be 32 (MD5), 40 (SHA-1) or 64 (SHA-256) hex digits");
  if (file.endsWith(".hdb") && algo !== "md5")
    throw signatureError(file, n, ".hdb files hold MD5 hashes; use .hsb for SHA");
  if (!NAME_RE.test(name)) throw signatureError(file, n, `bad signature name '${name}'`);
  if (flevel !== undefined && !/^[0-9]{1,4}$/.test(flevel))
    throw signatureError(file, n, `bad functionality level '${flevel}'`);
  let size: number | null;
  if (sizeText === "*") {
    // ClamAV accepts wildcard sizes only from functionality level 73 on.
    if (flevel === undefined || Number(flevel) < 73) {
      throw signatureError(file, n, "a '*' size needs a functionality level of at least 73 (…:name:73)");
    }
    size = null;
  } else {
    size = parseCount(sizeText, file, n, "size");
  }
  if (!flevelAdmits(flevel, undefined)) return { skipped: name };
  return { sig: { algo, hash, size, name, source: `${file}:${n}` } };
}

/** One `.ndb` line: `name:target:offset:hexsig[:min_flevel[:max_flevel]]`, its pattern compiled. */
export function parseBodyLine(line: string, file: string, n: number): Parsed<Omit<BodySignature, "lookup">> {
  const f = line.split(":");
  if (f.length < 4 || f.length > 6) {
    throw signatureError(
      file,
      n,
      `expected name:target:offset:hexsig[:flevel[:flevel]], got ${f.length} fields`,
    );
  }
  const [name, targetText, offsetText, hex, ...levels] = f as [string, string, string, string, ...string[]];
  if (!NAME_RE.test(name)) throw signatureError(file, n, `bad signature name '${name}'`);
  for (const l of levels) {
    if (!/^[0-9]{0,4}$/.test(l)) throw signatureError(file, n, `bad functionality level '${l}'`);
  }
  if (!/^[0-9]{1,2}$/.test(targetText) || !(Number(targetText) in TARGET_TYPES)) {
    throw signatureError(
      file,
      n,
      `unsupported target type '${targetText}' (supported: ${Object.entries(TARGET_TYPES)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")})`,
    );
  }
  const target = TARGET_TYPES[Number(targetText) as TargetCode];
  const offset = parseOffset(offsetText, file, n);
  const exeOffset = offset.kind === "ep" || offset.kind.includes("section");
  if (exeOffset && target !== "pe" && target !== "elf" && target !== "macho") {
    throw signatureError(file, n, `offset '${offsetText}' needs an executable target type (1, 6 or 9)`);
  }
  let pattern: Pattern;
  try {
    pattern = compilePattern(hex);
  } catch (e) {
    if (e instanceof PatternError) throw signatureError(file, n, `pattern: ${e.message}`);
    throw e;
  }
  // Checked after compiling: a skipped signature must still be valid (ClamAV refuses bad ones too).
  if (!flevelAdmits(levels[0], levels[1])) return { skipped: name };
  return { sig: { name, target, offset, pattern, source: `${file}:${n}` } };
}

/** The name field of a signature line (first field of `.ndb`, third of `.hdb`/`.hsb`). */
export function nameOfLine(line: string, body: boolean): string {
  return line.split(":")[body ? 0 : 2] ?? "";
}

/** `.hdb` / `.hsb` files, whole (tests and small tools; the loader streams lines). */
export function parseHashFile(
  text: string,
  file: string,
  lookup: ReadonlySet<string>,
  tally?: ParseTally,
): HashSignature[] {
  const out: HashSignature[] = [];
  for (const [n, line] of lines(text)) {
    const r = parseHashLine(line, file, n);
    if (r.sig) out.push({ ...r.sig, lookup: lookup.has(r.sig.name) });
    else {
      if (tally) tally.flevelSkipped++;
      tally?.skippedNames?.add(r.skipped);
    }
  }
  return out;
}

/** `.ndb` files, whole (tests and small tools; the loader streams lines). */
export function parseBodyFile(
  text: string,
  file: string,
  lookup: ReadonlySet<string>,
  tally?: ParseTally,
): BodySignature[] {
  const out: BodySignature[] = [];
  for (const [n, line] of lines(text)) {
    const r = parseBodyLine(line, file, n);
    if (r.sig) out.push({ ...r.sig, lookup: lookup.has(r.sig.name) });
    else {
      if (tally) tally.flevelSkipped++;
      tally?.skippedNames?.add(r.skipped);
    }
  }
  return out;
}

/** `lookup.txt`: one signature name per line, `#` comments. */
export function parseLookupFile(text: string, file: string): Set<string> {
  const names = new Set<string>();
  for (const [n, line] of lines(text)) {
    const name = line.trim();
    if (!NAME_RE.test(name)) throw signatureError(file, n, `bad signature name '${name}'`);
    names.add(name);
  }
  return names;
}

/**
 * ClamAV database files this engine does not read. Dropping them silently
 * would ship a pack that detects less (or, for .fp/.ign2, more) than the
 * vendor tested with clamscan, so pack and load refuse them by name.
 */
const UNSUPPORTED_CLAMAV: Record<string, string> = {
  ".ldb": "logical signatures",
  ".ldu": "logical signatures",
  ".fp": "false-positive allow-lists",
  ".sfp": "false-positive allow-lists",
  ".ign": "signature ignore lists",
  ".ign2": "signature ignore lists",
  ".cdb": "container metadata signatures",
  ".idb": "icon signatures",
  ".cbc": "bytecode signatures",
  ".yar": "YARA rules",
  ".yara": "YARA rules",
  ".mdb": "PE section hash signatures",
  ".msb": "PE section hash signatures",
  ".pdb": "phishing signatures",
  ".wdb": "phishing signatures",
  ".ndu": "unofficial body signatures in the PUA namespace",
  ".cvd": "packed ClamAV databases",
  ".cld": "packed ClamAV databases",
  ".cud": "packed ClamAV databases",
};

/** Why a file of a pack cannot be used ("… are not supported"), or null when it is not a known ClamAV database. */
export function unsupportedSignatureFile(path: string): string | null {
  const dot = path.lastIndexOf(".");
  const what = dot < 0 ? undefined : UNSUPPORTED_CLAMAV[path.slice(dot).toLowerCase()];
  return what
    ? `${path}: ClamAV ${what} (${path.slice(dot)}) are not supported by DatasetA (supported: ${SIGNATURE_EXTENSIONS.join(", ")}); remove the file or convert its signatures`
    : null;
}

export function isSignatureFile(path: string): boolean {
  return SIGNATURE_EXTENSIONS.some((e) => path.endsWith(e));
}
