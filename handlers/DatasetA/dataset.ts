/**
 * Builds a Dataset from the signature files of a DatasetA payload (or of a
 * directory, for `contentctl datasets pack`). Validation and loading are the
 * same work — parse every line, compile every pattern, index every anchor —
 * so anything that could fail at load fails in validate first.
 */
import type { ContentView } from "../../core/handler/contract.ts";
import { Dataset } from "./engine.ts";
import {
  type BodySignature,
  type HashSignature,
  isSignatureFile,
  LOOKUP_FILE,
  type ParseTally,
  parseBodyFile,
  parseHashFile,
  parseLookupFile,
  signatureError,
  unsupportedSignatureFile,
} from "./signatures.ts";

export interface SignatureSource {
  path: string;
  text: string;
}

export function datasetFromSources(sources: SignatureSource[]): Dataset {
  const lookupSource = sources.find((s) => s.path === LOOKUP_FILE || s.path.endsWith(`/${LOOKUP_FILE}`));
  const lookup = lookupSource ? parseLookupFile(lookupSource.text, lookupSource.path) : new Set<string>();
  const hashes: HashSignature[] = [];
  const body: BodySignature[] = [];
  const sigFiles = sources
    .filter((s) => isSignatureFile(s.path))
    .sort((a, b) => a.path.localeCompare(b.path));
  if (sigFiles.length === 0) {
    throw signatureError("payload", 0, "no signature files (.hdb, .hsb or .ndb)");
  }
  const tally: ParseTally = { flevelSkipped: 0, skippedNames: new Set() };
  // Appended one by one: a spread of a million elements overflows the stack.
  for (const s of sigFiles) {
    if (s.path.endsWith(".ndb"))
      for (const sig of parseBodyFile(s.text, s.path, lookup, tally)) body.push(sig);
    else for (const sig of parseHashFile(s.text, s.path, lookup, tally)) hashes.push(sig);
  }
  if (lookupSource) {
    const names = new Set(tally.skippedNames);
    for (const h of hashes) names.add(h.name);
    for (const b of body) names.add(b.name);
    const lines = lookupSource.text.split("\n");
    for (const name of lookup) {
      if (!names.has(name)) {
        const line = lines.findIndex((l) => l.trim() === name) + 1;
        throw signatureError(lookupSource.path, line, `lookup-enabled signature '${name}' is not defined`);
      }
    }
  }
  return new Dataset(hashes, body, tally.flevelSkipped);
}

export function sourcesFromView(view: ContentView): SignatureSource[] {
  for (const p of view.files) {
    const why = unsupportedSignatureFile(p);
    if (why) throw signatureError(p, 0, why);
  }
  return view.files
    .filter((p) => isSignatureFile(p) || p === LOOKUP_FILE)
    .map((path) => ({ path, text: view.readText(path) }));
}
