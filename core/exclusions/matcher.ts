/**
 * The one cheap matcher every feature asks (wave3.md, "Exclusions"). Built
 * once per exclusion set and swapped whole, so a lookup never sees half a
 * set. Cost per event does not grow with the number of exclusions:
 *
 *   path / process path   one pass over the subject, one Map probe per directory level
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

/**
 * Path prefixes by a hash of their bytes (FNV-1a over UTF-16 code units):
 * one pass over the subject hashes every directory prefix as it goes, so a
 * lookup allocates nothing (slicing each prefix and hashing it again cost
 * ~10x more, bench/exclusions.ts); a hash hit is confirmed by comparing.
 */
class PrefixTable {
  private readonly byHash = new Map<number, { value: string; mask: number }[]>();
  size = 0;

  constructor(entries: Map<string, number>) {
    for (const [value, mask] of entries) {
      const h = hashOf(value);
      const list = this.byHash.get(h);
      if (list) list.push({ value, mask });
      else this.byHash.set(h, [{ value, mask }]);
      this.size++;
    }
  }

  /** True when `path` or a directory above it carries `bit`. */
  covers(path: string, bit: number): boolean {
    if (this.size === 0 || path.charCodeAt(0) !== 47) return false;
    let h = FNV_OFFSET;
    const n = path.length;
    for (let i = 0; i <= n; i++) {
      const c = i < n ? path.charCodeAt(i) : 47;
      if (c === 47 && i > 0) {
        const list = this.byHash.get(h);
        if (list) {
          for (const e of list) {
            if ((e.mask & bit) !== 0 && e.value.length === i && path.startsWith(e.value)) return true;
          }
        }
      }
      h = Math.imul(h ^ c, 16777619) >>> 0;
    }
    return false;
  }
}

const FNV_OFFSET = 2166136261;
function hashOf(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export class ExclusionMatcher {
  private readonly paths: PrefixTable;
  private readonly exes: PrefixTable;
  private readonly names = new Map<string, number>();
  private readonly hashes = new Map<string, number>();
  private readonly signers = new Map<string, number>();
  readonly size: number;

  constructor(list: readonly Exclusion[]) {
    const paths = new Map<string, number>();
    const exes = new Map<string, number>();
    for (const e of list) {
      if (e.kind === "path") add(paths, e.value, e.scope);
      else if (e.kind === "process") add(e.value.startsWith("/") ? exes : this.names, e.value, e.scope);
      else if (e.kind === "sha256") add(this.hashes, e.value.toLowerCase(), e.scope);
      else add(this.signers, e.value.toLowerCase(), e.scope);
    }
    this.paths = new PrefixTable(paths);
    this.exes = new PrefixTable(exes);
    this.size = list.length;
  }

  static readonly empty = new ExclusionMatcher([]);

  /** A file: by its path, and (when known) its SHA-256 and signer. */
  file(scope: ExclusionScope, path: string, sha256?: string, signer?: string): boolean {
    const bit = BIT[scope];
    if (this.paths.covers(path, bit)) return true;
    if (sha256 && ((this.hashes.get(sha256.toLowerCase()) ?? 0) & bit) !== 0) return true;
    return signer !== undefined && ((this.signers.get(signer.toLowerCase()) ?? 0) & bit) !== 0;
  }

  /** An object by its SHA-256 alone (a scanned object whose path was judged before it was read). */
  digest(scope: ExclusionScope, sha256: string): boolean {
    return ((this.hashes.get(sha256.toLowerCase()) ?? 0) & BIT[scope]) !== 0;
  }

  /** An object by its verified signer alone (the SHA-256 of the signer certificate). */
  signer(scope: ExclusionScope, thumbprint: string): boolean {
    return ((this.signers.get(thumbprint.toLowerCase()) ?? 0) & BIT[scope]) !== 0;
  }

  /** A process: by executable path (or a directory above it), name, image hash or signer. */
  process(scope: ExclusionScope, p: ProcessSubject): boolean {
    const bit = BIT[scope];
    if (p.exe && this.exes.covers(p.exe, bit)) return true;
    if (p.name && ((this.names.get(p.name) ?? 0) & bit) !== 0) return true;
    if (p.sha256 && ((this.hashes.get(p.sha256.toLowerCase()) ?? 0) & bit) !== 0) return true;
    return p.signer !== undefined && ((this.signers.get(p.signer.toLowerCase()) ?? 0) & bit) !== 0;
  }
}
