/**
 * The `headOnly` declaration (core/handler/contract.ts) as handlers see it,
 * the same in a host process and in-process: a file declared head-only is
 * read with `view.head(path, n)` for at most the declared bytes; `read` and
 * `readText` of it are refused. In a host process that is all there is (the
 * supervisor sent only the head); in-process the rule is kept anyway, so a
 * handler that passes its tests in one isolation mode behaves the same in
 * the other. For the same reason `head`'s byte count is checked here, once,
 * for every handler: a negative or fractional count would otherwise throw in
 * one view and be read as "all but the last bytes" by another.
 */
import { HandlerError } from "../errors.ts";
import type { ContentView, HandlerManifest } from "../handler/contract.ts";

/** How many leading bytes of `path` the supervisor sends a host, or undefined to send it whole. */
export function headBytesFor(manifest: Pick<HandlerManifest, "headOnly">, path: string): number | undefined {
  return manifest.headOnly && Object.hasOwn(manifest.headOnly, path) ? manifest.headOnly[path] : undefined;
}

export function headOnlyView(view: ContentView, manifest: Pick<HandlerManifest, "headOnly">): ContentView {
  const declared = manifest.headOnly ?? {};
  const refuse = (path: string, what: string) =>
    new HandlerError(
      "HND_HEAD_ONLY",
      `${view.type} v${view.version}: ${path} is declared headOnly (${declared[path]} bytes) in the handler's manifest; ${what}`,
      { file: path },
    );
  const whole = (path: string) => {
    if (headBytesFor(manifest, path) !== undefined) throw refuse(path, "read it with view.head(path, bytes)");
  };
  return {
    type: view.type,
    version: view.version,
    signingTime: view.signingTime,
    files: view.files,
    read(path) {
      whole(path);
      return view.read(path);
    },
    readText(path) {
      whole(path);
      return view.readText(path);
    },
    size: (path) => view.size(path),
    head(path, bytes) {
      if (!Number.isSafeInteger(bytes) || bytes < 0)
        throw new HandlerError(
          "HND_BAD_ARGS",
          `${view.type} v${view.version}: view.head(${path}, ${bytes}): the byte count must be a non-negative integer`,
          { file: path },
        );
      const n = headBytesFor(manifest, path);
      if (n !== undefined && bytes > n) throw refuse(path, `asked for ${bytes} bytes`);
      return view.head(path, bytes);
    },
  };
}
