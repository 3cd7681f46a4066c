/**
 * A module a process may never need, loaded on first use: Authenticode's
 * X.509 and CMS stack in a scanner host that meets no PE file (most Linux
 * endpoints) costs every scanner host ~15 ms of start-up and its heap for
 * nothing (issue 21, bench/scan-startup.ts).
 *
 * In the compiled agent the module is part of the executable's own bundle,
 * so evaluating it later reads no file. Run from source it is a file on
 * disk, and a host that has locked its sandbox (Landlock,
 * core/host/landlock.ts) may no longer read it — so from source every
 * deferred import starts at once, and a host waits for them
 * (`deferredImportsSettled`) before it locks itself in.
 */

/** True inside `bun build --compile` output, whose modules live in the executable ($bunfs). */
export const COMPILED = import.meta.url.includes("$bunfs");

const started: Promise<unknown>[] = [];

export function deferredImport<T>(
  load: () => Promise<T>,
  opts: { compiled?: boolean } = {},
): () => Promise<T> {
  let loading: Promise<T> | undefined;
  if (!(opts.compiled ?? COMPILED)) {
    loading = load();
    // A module that fails to load fails its first use, with its own error, not the host's start.
    started.push(loading.catch(() => undefined));
  }
  return () => {
    loading ??= load();
    return loading;
  };
}

/** Resolves once every import a source run started early has settled (a host calls it before Landlock). */
export function deferredImportsSettled(): Promise<void> {
  return Promise.all(started).then(() => undefined);
}
