/**
 * The one cheap matcher every feature asks (wave3.md, "Exclusions"). Built
 * once per exclusion set and swapped whole, so a lookup never sees half a
 * set. Cost per event does not grow with the number of exclusions:
 *
 *   path / process path   one Map lookup per directory level of the subject
 *                         (a path exclusion covers the path and everything beneath it)
 *   process name, sha256, signer   one Map lookup
 *
 * Each entry is a bit mask of scopes, so a subject excluded for on-access
 * only is still scanned on demand. Measured in bench/exclusions.ts.
 */
import { EXCLUSION_SCOPES, type Exclusion, type ExclusionScope } from "../exclusions-config.ts";

const BIT: Record<ExclusionScope, number> = Object.fromEntries(
  EXCLUSION_SCOPES.map((s, i) => [s, 1 << i]),
) as Record<ExclusionScope, number>;

export interface ProcessSubject {
  /** Absolute executable path (/proc/PID/exe). */
  exe?: string;
  /** Process name (comm or argv[0] basename). */
  name?: string;
  sha256?: string;
  signer?: string;
}

function add(map: Map<string, number>, key: string, scopes: readonly ExclusionScope[]): void {
  let mask = map.get(key) ?? 0;
  for (const s of scopes) mask |= BIT[s];
  map.set(key, mask);
}

/** True when `path` or one of its parent directories is in `map` with `bit`. */
function underAny(map: Map<string, number>, path: string, bit: number): boolean {
  if (map.size === 0 || !path.startsWith("/")) return false;
  let p = path;
  for (;;) {
    const m = map.get(p);
    if (m !== undefined && (m & bit) !== 0) return true;
    const cut = p.lastIndexOf("/");
    if (cut <= 0) return false;
    p = p.slice(0, cut);
  }
}

export class ExclusionMatcher {
  private readonly paths = new Map<string, number>();
  private readonly exes = new Map<string, number>();
  private readonly names = new Map<string, number>();
  private readonly hashes = new Map<string, number>();
  private readonly signers = new Map<string, number>();
  readonly size: number;

  constructor(list: readonly Exclusion[]) {
    for (const e of list) {
      if (e.kind === "path") add(this.paths, e.value, e.scope);
      else if (e.kind === "process") add(e.value.startsWith("/") ? this.exes : this.names, e.value, e.scope);
      else if (e.kind === "sha256") add(this.hashes, e.value.toLowerCase(), e.scope);
      else add(this.signers, e.value.toLowerCase(), e.scope);
    }
    this.size = list.length;
  }

  static readonly empty = new ExclusionMatcher([]);

  /** A file: by its path, and (when known) its SHA-256 and signer. */
  file(scope: ExclusionScope, path: string, sha256?: string, signer?: string): boolean {
    const bit = BIT[scope];
    if (underAny(this.paths, path, bit)) return true;
    if (sha256 && ((this.hashes.get(sha256.toLowerCase()) ?? 0) & bit) !== 0) return true;
    return signer !== undefined && ((this.signers.get(signer.toLowerCase()) ?? 0) & bit) !== 0;
  }

  /** A process: by executable path (or a directory above it), name, image hash or signer. */
  process(scope: ExclusionScope, p: ProcessSubject): boolean {
    const bit = BIT[scope];
    if (p.exe && underAny(this.exes, p.exe, bit)) return true;
    if (p.name && ((this.names.get(p.name) ?? 0) & bit) !== 0) return true;
    if (p.sha256 && ((this.hashes.get(p.sha256.toLowerCase()) ?? 0) & bit) !== 0) return true;
    return p.signer !== undefined && ((this.signers.get(p.signer.toLowerCase()) ?? 0) & bit) !== 0;
  }
}
