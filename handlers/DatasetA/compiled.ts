/**
 * A signature set in compact form: flat typed arrays instead of an object
 * per signature. Body signatures keep only where their line is and their
 * anchor (in the index's columns); the full pattern is compiled again the
 * first time its anchor fires (engine.ts). Hash signatures live in sorted
 * digest tables (hash-table.ts). Names, offsets and patterns stay in the
 * signature files' bytes, which the dataset keeps.
 *
 * `compileSources` builds it from the text, streaming line by line over
 * the bytes; index-file.ts stores the same columns in a pack so an agent
 * loads them without compiling.
 */
import { isUtf8 } from "node:buffer";
import { byCodeUnit } from "../../core/compare.ts";
import { type AnchorColumns, AnchorColumnsBuilder } from "../_shared/matcher/matcher.ts";
import { type HashTables, HashTablesBuilder, type LineRefs } from "./hash-table.ts";
import {
  forEachLine,
  isSignatureFile,
  LOOKUP_FILE,
  parseBodyLine,
  parseHashLine,
  parseLookupFile,
  signatureError,
} from "./signatures.ts";

export interface SignatureFile {
  /** Payload-relative path. */
  path: string;
  bytes: Uint8Array;
}

export interface CompiledSet {
  /** Signature files in index order (sorted by path); refs point into these. */
  files: SignatureFile[];
  /** Per body signature (in file order): where its line is. */
  body: LineRefs;
  anchors: AnchorColumns;
  hashes: HashTables;
  /** Names in lookup.txt: detections of these ask Live Protection. */
  lookup: ReadonlySet<string>;
  lookupSignatures: number;
  flevelSkipped: number;
}

export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The signature files of a payload, sorted by path (the order every index refers to). */
export function signatureFiles(sources: SignatureFile[]): SignatureFile[] {
  const files = sources.filter((s) => isSignatureFile(s.path)).sort((a, b) => byCodeUnit(a.path, b.path));
  if (files.length === 0) throw signatureError("payload", 0, "no signature files (.hdb, .hsb or .ndb)");
  if (files.length > 65535)
    throw signatureError("payload", 0, `${files.length} signature files (at most 65535)`);
  for (const f of files) {
    if (!isUtf8(f.bytes)) throw signatureError(f.path, 0, "not valid UTF-8");
  }
  return files;
}

function countLines(bytes: Uint8Array): number {
  let n = 1;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) n++;
  return n;
}

/** Parses and compiles every line (what validate guarantees), keeping only the compact columns. */
export function compileSources(sources: SignatureFile[]): CompiledSet {
  const lookupSource = sources.find((s) => s.path === LOOKUP_FILE || s.path.endsWith(`/${LOOKUP_FILE}`));
  const lookupText = lookupSource ? new TextDecoder("utf-8", { fatal: true }).decode(lookupSource.bytes) : "";
  const lookup = lookupSource ? parseLookupFile(lookupText, lookupSource.path) : new Set<string>();
  const files = signatureFiles(sources);

  let capacity = 0;
  for (const f of files) if (f.path.endsWith(".ndb")) capacity += countLines(f.bytes);
  const bodyFile = new Uint16Array(capacity);
  const bodyStart = new Uint32Array(capacity);
  const bodyLine = new Uint32Array(capacity);
  const anchors = new AnchorColumnsBuilder(capacity);
  const hashes = new HashTablesBuilder();
  let bodies = 0;
  let lookupSignatures = 0;
  let flevelSkipped = 0;
  const named = new Set<string>();
  const noteName = (name: string, counted: boolean) => {
    if (!lookup.has(name)) return;
    named.add(name);
    if (counted) lookupSignatures++;
  };

  files.forEach((f, fi) => {
    const buf = asBuffer(f.bytes);
    if (f.path.endsWith(".ndb")) {
      forEachLine(f.bytes, (s, e, n) => {
        const r = parseBodyLine(buf.toString("utf8", s, e), f.path, n);
        if (!r.sig) {
          flevelSkipped++;
          noteName(r.skipped, false);
          return;
        }
        const sig = bodies++;
        bodyFile[sig] = fi;
        bodyStart[sig] = s;
        bodyLine[sig] = n;
        const a = r.sig.pattern.anchor;
        anchors.add(sig, a.key, a.bytes.length, a.bytes, a.ext);
        noteName(r.sig.name, true);
      });
    } else {
      forEachLine(f.bytes, (s, e, n) => {
        const r = parseHashLine(buf.toString("utf8", s, e), f.path, n);
        if (!r.sig) {
          flevelSkipped++;
          noteName(r.skipped, false);
          return;
        }
        hashes.add(r.sig.algo, r.sig.hash, r.sig.size, fi, s, n);
        noteName(r.sig.name, true);
      });
    }
  });

  if (lookupSource) {
    const lines = lookupText.split("\n");
    for (const name of lookup) {
      if (!named.has(name)) {
        const line = lines.findIndex((l) => l.trim() === name) + 1;
        throw signatureError(lookupSource.path, line, `lookup-enabled signature '${name}' is not defined`);
      }
    }
  }
  return {
    files,
    body: {
      file: bodyFile.subarray(0, bodies),
      start: bodyStart.subarray(0, bodies),
      line: bodyLine.subarray(0, bodies),
    },
    anchors: anchors.finish(),
    hashes: hashes.finish(),
    lookup,
    lookupSignatures,
    flevelSkipped,
  };
}
