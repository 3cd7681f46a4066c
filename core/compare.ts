/**
 * String order for sorting keys, names and timestamps: UTF-16 code units,
 * the order `Array.prototype.sort` uses without a comparator.
 *
 * Not `localeCompare`: its result depends on the locale of the process, so a
 * canonical form built with it could differ between the supervisor and a
 * host started with `LANG=C.UTF-8`, and its first call builds an ICU
 * collator — ~1 ms of CPU in the compiled agent, and up to 7 ms in a host's
 * start-up profile, for keys that are plain ASCII.
 */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
