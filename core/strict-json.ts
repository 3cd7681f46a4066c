/**
 * One JSON text, one meaning. `JSON.parse` lets the last of two equal keys
 * win, so a reader that keeps the first (another language's parser, a
 * reviewer's eye, a log) sees a different type or version than the agent
 * uses; `__proto__` and `constructor` keys invite prototype confusion in
 * whatever copies the object next; and a leading byte order mark is
 * dropped by one decoder and kept by another, so the verifier and the
 * store disagreed on whether a manifest parses at all. Signed documents
 * (manifest.json, index.json) and the store's own state go through here.
 */

/** Keys that name an object's machinery rather than data. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

export class StrictJsonError extends Error {}

/** Strict UTF-8, no byte order mark, JSON, no duplicate or forbidden keys. Throws StrictJsonError. */
export function decodeStrictJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text so it is refused below instead of silently dropped.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    throw new StrictJsonError(`not valid UTF-8 (${(e as Error).message})`);
  }
  return parseStrictJson(text);
}

export function parseStrictJson(text: string): unknown {
  if (text.charCodeAt(0) === 0xfeff) throw new StrictJsonError("starts with a byte order mark (U+FEFF)");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new StrictJsonError(`not JSON (${(e as Error).message})`);
  }
  const problem = keyProblem(text);
  if (problem) throw new StrictJsonError(problem);
  return value;
}

/**
 * Scans text that JSON.parse already accepted for object keys that repeat
 * within one object or are forbidden. Keys are compared after unescaping,
 * so `"\u0074ype"` and `"type"` are the same key.
 */
function keyProblem(text: string): string | undefined {
  const stack: { keys?: Set<string>; expectKey: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const top = stack.at(-1);
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (FORBIDDEN_KEYS.has(key)) return `forbidden key ${JSON.stringify(key)} at offset ${i}`;
        if (top.keys.has(key)) return `duplicate key ${JSON.stringify(key)} at offset ${i}`;
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    } else if (c === "{") stack.push({ keys: new Set(), expectKey: true });
    else if (c === "[") stack.push({ expectKey: false });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === ",") {
      const top = stack.at(-1);
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}
