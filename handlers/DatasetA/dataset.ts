/**
 * Builds a Dataset from the files of a DatasetA payload (or of a directory,
 * for `contentctl datasets pack`). With a prebuilt index (index-file.ts,
 * written by `contentctl datasets pack`) the columns are taken from it after
 * checking its structure and that it was built from exactly these signature
 * files; without one, every line is parsed and compiled here. Validation
 * and loading are the same work, so anything that could fail at load fails
 * in validate first.
 */
import type { ContentView } from "../../core/handler/contract.ts";
import { compileSources, type SignatureFile } from "./compiled.ts";
import { Dataset } from "./engine.ts";
import { INDEX_FILE, readIndex } from "./index-file.ts";
import { isSignatureFile, LOOKUP_FILE, signatureError, unsupportedSignatureFile } from "./signatures.ts";

/** A payload file: its bytes, or (tests, small tools) its text. */
export interface SignatureSource {
  path: string;
  text?: string;
  bytes?: Uint8Array;
}

function bytesOf(s: SignatureSource): SignatureFile {
  return { path: s.path, bytes: s.bytes ?? new TextEncoder().encode(s.text ?? "") };
}

export function datasetFromSources(sources: SignatureSource[]): Dataset {
  const files = sources.map(bytesOf);
  const index = files.find((f) => f.path === INDEX_FILE);
  return new Dataset((index && readIndex(index.bytes, files)) || compileSources(files));
}

export function sourcesFromView(view: ContentView): SignatureSource[] {
  for (const p of view.files) {
    const why = unsupportedSignatureFile(p);
    if (why) throw signatureError(p, 0, why);
  }
  return view.files
    .filter((p) => isSignatureFile(p) || p === LOOKUP_FILE || p === INDEX_FILE)
    .map((path) => ({ path, bytes: view.read(path) }));
}
