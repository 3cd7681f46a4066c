/**
 * The scan engine: a loaded signature set (hash and body signatures plus
 * the multi-pattern index, all built once) and the recursive object scan —
 * hash signatures, body signatures, executable identity (SHA-256, PE
 * signer) and container recursion under explicit limits. Pure computation
 * over bytes it is given; the only I/O is spill files in the work directory.
 */

import { deferredImport } from "../../core/deferred-import.ts";
import { detectKind, type ExeInfo, type ObjectKind, parseExecutable } from "../_shared/filetype/filetype.ts";
import { AnchorIndex } from "../_shared/matcher/matcher.ts";
import {
  Budget,
  BudgetExceeded,
  type ForwardMemo,
  type StartRange,
  verifyAt,
} from "../_shared/matcher/pattern.ts";
import { hasEmbeddedZip, inflateBounded, listTar, listZip } from "./archive.ts";
import { asBuffer, type CompiledSet } from "./compiled.ts";
import { HashIndex } from "./hash-table.ts";
import {
  ANCHOR_STEPS,
  BOMB_NAME,
  type DatasetStats,
  DEFAULT_LIMITS,
  type Detection,
  type ExecutableFound,
  type LimitNote,
  type ScanLimits,
  type ScanOutcome,
} from "./scan-outcome.ts";
import { type BodySignature, nameOfLine, type OffsetSpec, parseBodyLine } from "./signatures.ts";

export {
  ANCHOR_STEPS,
  BOMB_NAME,
  type DatasetStats,
  DEFAULT_LIMITS,
  type Detection,
  type DetectionKind,
  type ExecutableFound,
  type LimitNote,
  type ScanLimits,
  type ScanOutcome,
} from "./scan-outcome.ts";

interface ScanState {
  limits: ScanLimits;
  budget: Budget;
  spillDir: string;
  out: ScanOutcome;
  files: number;
  expanded: number;
  topSize: number;
  bombReported: boolean;
}

/** Body signatures compiled at their first anchor hit are kept up to this many (then the cache restarts). */
const BODY_CACHE_MAX = 65_536;

// Authenticode needs the X.509/CMS stack; most endpoints this scanner runs on never show it a PE file.
const authenticode = deferredImport(() => import("./authenticode.ts"));

export class Dataset {
  private readonly hashes: HashIndex;
  private readonly index: AnchorIndex;
  private readonly files: Buffer[];
  private readonly bodyCount: number;
  /** Patterns compiled on first use: a signature is a line reference until its anchor fires. */
  private readonly bodyCache = new Map<number, BodySignature | null>();
  readonly stats: DatasetStats;

  constructor(private readonly set: CompiledSet) {
    this.files = set.files.map((f) => asBuffer(f.bytes));
    this.hashes = new HashIndex(set.hashes);
    this.index = new AnchorIndex(set.anchors);
    this.bodyCount = set.body.start.length;
    this.stats = {
      hashSignatures: this.hashes.count,
      bodySignatures: this.bodyCount,
      lookupSignatures: set.lookupSignatures,
      anchors: this.index.anchors,
      uniqueAnchors: this.index.uniqueAnchors,
      shortAnchors: this.index.shortAnchors,
      indexBytes: this.index.byteLength,
      filterBits: this.index.filterSizeBits,
      flevelSkipped: set.flevelSkipped,
    };
  }

  /** The text of a signature's line (up to the newline). */
  private lineText(file: number, start: number): string {
    const b = this.files[file]!;
    let end = b.indexOf(10, start);
    if (end < 0) end = b.length;
    if (end > start && b[end - 1] === 13) end--;
    return b.toString("utf8", start, end);
  }

  /**
   * Body signature `sig`, compiled from its line on first use. Validation
   * compiled every line already (or the pack did, for a prebuilt index bound
   * to these bytes), so this does not fail; if it did, the signature is
   * treated as absent rather than failing the scan.
   */
  private body(sig: number): BodySignature | null {
    const hit = this.bodyCache.get(sig);
    if (hit !== undefined) return hit;
    const b = this.set.body;
    const file = this.set.files[b.file[sig]!]!.path;
    let s: BodySignature | null = null;
    try {
      const r = parseBodyLine(this.lineText(b.file[sig]!, b.start[sig]!), file, b.line[sig]!);
      if (r.sig) s = { ...r.sig, lookup: this.set.lookup.has(r.sig.name) };
    } catch {
      s = null;
    }
    if (this.bodyCache.size >= BODY_CACHE_MAX) this.bodyCache.clear();
    this.bodyCache.set(sig, s);
    return s;
  }

  async scan(
    data: Uint8Array,
    opts: { name?: string; limits?: Partial<ScanLimits>; spillDir: string },
  ): Promise<ScanOutcome> {
    const started = performance.now();
    const limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const out: ScanOutcome = {
      kind: "other",
      size: data.length,
      detections: [],
      executables: [],
      limits: [],
      objects: 0,
      bytesScanned: 0,
      durationMs: 0,
    };
    const state: ScanState = {
      limits,
      budget: new Budget(limits.verifyBudget),
      spillDir: opts.spillDir,
      out,
      files: 0,
      expanded: 0,
      topSize: data.length,
      bombReported: false,
    };
    const top = await this.scanObject(data, [], 0, state);
    out.kind = top.kind;
    if (top.sha256) out.sha256 = top.sha256;
    out.durationMs = performance.now() - started;
    return out;
  }

  private async scanObject(
    d: Uint8Array,
    path: string[],
    depth: number,
    state: ScanState,
  ): Promise<{ kind: ObjectKind; sha256?: string }> {
    const out = state.out;
    out.objects++;
    out.bytesScanned += d.length;
    const kind = detectKind(d);
    const exe = parseExecutable(d, kind);
    let sha256: string | undefined;
    const sha = () => {
      sha256 ??= new Bun.CryptoHasher("sha256").update(d).digest("hex");
      return sha256;
    };
    const detect = (x: Omit<Detection, "path" | "sha256" | "size" | "objectKind">) => {
      out.detections.push({ ...x, path, sha256: sha(), size: d.length, objectKind: kind });
    };

    // A detection that needs no lookup settles the object in first-match mode (a lookup may dismiss one).
    const settled = this.matchHashes(d, sha, detect) && state.limits.firstMatch;
    if (!settled) this.matchBody(d, kind, exe, path, state, detect);

    if (exe) {
      const found: ExecutableFound = { path, kind: exe.kind, sha256: sha(), size: d.length };
      if (exe.kind === "pe") found.authenticode = await (await authenticode()).checkAuthenticode(d, exe);
      out.executables.push(found);
    }
    // Self-extracting archives: a stub (PE, ELF, script) with a zip appended.
    const container =
      kind === "zip" || kind === "gzip" || kind === "tar" ? kind : hasEmbeddedZip(d) ? "zip" : null;
    if (container) {
      if (depth >= state.limits.maxDepth) {
        out.limits.push({
          path,
          limit: "depth",
          detail: `not opened: nesting deeper than ${state.limits.maxDepth}`,
        });
      } else {
        const before = out.detections.length;
        await this.openContainer(d, container, path, depth, state, detect);
        dropShadowed(out.detections, path, before);
      }
    }
    return { kind, sha256 };
  }

  private matchHashes(
    d: Uint8Array,
    sha: () => string,
    detect: (x: Omit<Detection, "path" | "sha256" | "size" | "objectKind">) => void,
  ): boolean {
    let standing = false;
    for (const algo of this.hashes.algosFor(d.length)) {
      const digest: Uint8Array =
        algo === "sha256" ? Buffer.from(sha(), "hex") : new Bun.CryptoHasher(algo).update(d).digest();
      const t = this.set.hashes[algo];
      for (const row of this.hashes.find(algo, digest, d.length)) {
        const path = this.set.files[t.file[row]!]!.path;
        const name = nameOfLine(this.lineText(t.file[row]!, t.start[row]!), false);
        const lookup = this.set.lookup.has(name);
        detect({ name, kind: "hash", lookup, source: `${path}:${t.line[row]}` });
        if (!lookup) standing = true;
      }
    }
    return standing;
  }

  private matchBody(
    d: Uint8Array,
    kind: ObjectKind,
    exe: ExeInfo | null,
    path: string[],
    state: ScanState,
    detect: (x: Omit<Detection, "path" | "sha256" | "size" | "objectKind">) => void,
  ): void {
    if (this.bodyCount === 0 || d.length === 0) return;
    const buf = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    const matched = new Set<number>();
    const budget = state.budget;
    const perSig = state.limits.verifyBudget;
    const perAnchor = Math.min(perSig, ANCHOR_STEPS);
    // Steps spent per signature in this object, and signatures that ran out: the
    // budget is the signature's, so a crafted input against one signature never
    // hides another signature's detection.
    const spent = new Map<number, number>();
    const memos = new Map<number, ForwardMemo>();
    const firstMatch = state.limits.firstMatch;
    this.index.scan(d, (sig, pos) => {
      if (matched.has(sig)) return false;
      const s = this.body(sig);
      if (!s) return false;
      if (s.target !== "any" && s.target !== kind) return false;
      const range = startRange(s.offset, d.length, exe);
      if (!range) return false;
      const p = s.pattern;
      let memo: ForwardMemo | undefined;
      if (!p.simple) {
        const used = spent.get(sig) ?? 0;
        if (used >= perSig) return false;
        budget.steps = 0;
        budget.limit = Math.min(perAnchor, perSig - used);
        if (p.parts.length > 1) {
          memo = memos.get(sig) ?? [];
          memos.set(sig, memo);
        }
      }
      let m: ReturnType<typeof verifyAt>;
      try {
        m = verifyAt(d, buf, p, pos, range, budget, memo);
      } catch (e) {
        if (!(e instanceof BudgetExceeded)) throw e;
        m = null;
      }
      if (!p.simple) {
        const used = (spent.get(sig) ?? 0) + budget.steps;
        spent.set(sig, used);
        if (used >= perSig) {
          state.out.limits.push({
            path,
            limit: "budget",
            detail: `${s.name} (${s.source}): verification budget (${perSig} steps) exhausted; this signature was not checked in the rest of the object`,
          });
        }
      }
      if (m) {
        matched.add(sig);
        detect({ name: s.name, kind: "body", offset: m.start, lookup: s.lookup, source: s.source });
        return firstMatch && !s.lookup;
      }
      return false;
    });
  }

  private async openContainer(
    d: Uint8Array,
    kind: "zip" | "gzip" | "tar",
    path: string[],
    depth: number,
    state: ScanState,
    detect: (x: Omit<Detection, "path" | "sha256" | "size" | "objectKind">) => void,
  ): Promise<void> {
    const { limits, out } = state;
    const note = (limit: LimitNote["limit"], detail: string, at = path) =>
      out.limits.push({ path: at, limit, detail });
    const bomb = (detail: string) => {
      if (state.bombReported) return;
      state.bombReported = true;
      detect({ name: BOMB_NAME, kind: "heuristic", lookup: false, detail });
    };
    const takeFile = (name: string): boolean => {
      if (state.files >= limits.maxFiles) {
        note("files", `more than ${limits.maxFiles} members; the rest were not opened`, [...path, name]);
        return false;
      }
      state.files++;
      return true;
    };
    /** Inflates one member under the member and per-object budgets; reports bombs and limits. */
    const inflate = async (
      input: Uint8Array,
      format: "raw" | "gzip",
      name: string,
      declared: number | null,
    ) => {
      const remaining = limits.maxScanBytes - state.expanded;
      const limit = Math.min(limits.maxMemberBytes, remaining);
      const at = [...path, name];
      if (declared !== null && declared > limit && declared / Math.max(1, input.length) >= limits.maxRatio) {
        bomb(
          `${at.join("/")}: declares ${declared} bytes from ${input.length} (ratio ${Math.round(declared / Math.max(1, input.length))})`,
        );
        return null;
      }
      const r = await inflateBounded(input, format, limit, limits.memoryBytes, state.spillDir);
      if (!r.ok) {
        if (r.reason === "corrupt") {
          note("corrupt", `cannot inflate: ${r.message}`, at);
          return null;
        }
        state.expanded += r.produced;
        const memberRatio = r.produced / Math.max(1, input.length);
        const totalRatio = state.expanded / Math.max(1, state.topSize);
        if (memberRatio >= limits.maxRatio || totalRatio >= limits.maxRatio) {
          bomb(
            `${at.join("/")}: expands past ${r.produced} bytes (ratio ≥ ${Math.round(Math.max(memberRatio, totalRatio))})`,
          );
        } else {
          note(limit === remaining ? "scan-size" : "member-size", `stopped after ${r.produced} bytes`, at);
        }
        return null;
      }
      state.expanded += r.data.length;
      return r.data;
    };

    if (kind === "gzip") {
      if (!takeFile("(gunzip)")) return;
      const data = await inflate(d, "gzip", "(gunzip)", null);
      if (data) await this.scanObject(data, [...path, "(gunzip)"], depth + 1, state);
      return;
    }
    if (kind === "tar") {
      const listing = listTar(d, limits.maxFiles);
      if (listing.problem) note("corrupt", `tar: ${listing.problem}`);
      for (const m of listing.members) {
        if (!takeFile(m.name)) return;
        await this.scanObject(d.subarray(m.offset, m.offset + m.size), [...path, m.name], depth + 1, state);
      }
      return;
    }
    const listing = listZip(d, limits.maxFiles + 1);
    if (listing.problem) note("corrupt", `zip: ${listing.problem}`);
    if (listing.overlapping) {
      bomb("zip members overlap (non-recursive zip bomb construction); members not extracted");
      return;
    }
    for (const e of listing.entries) {
      if (!takeFile(e.name)) return;
      const at = [...path, e.name];
      if (e.flags & 1) {
        note("encrypted", "encrypted member not scanned", at);
        continue;
      }
      if (e.dataOffset + e.compressedSize > d.length) {
        note("corrupt", "member data lies outside the archive", at);
        continue;
      }
      const raw = d.subarray(e.dataOffset, e.dataOffset + e.compressedSize);
      let data: Uint8Array | null;
      if (e.method === 0) data = raw;
      else if (e.method === 8) data = await inflate(raw, "raw", e.name, e.size);
      else {
        note("unsupported", `compression method ${e.method} not supported`, at);
        continue;
      }
      if (data) await this.scanObject(data, at, depth + 1, state);
    }
  }
}

/**
 * A member stored uncompressed (tar, stored zip entries) also matches in its
 * container's raw bytes; the member is the precise answer, so the
 * container's detection of the same signature is dropped.
 */
function dropShadowed(detections: Detection[], container: string[], firstNested: number): void {
  const nested = new Set(detections.slice(firstNested).map((d) => d.name));
  const depth = container.length;
  for (let i = firstNested - 1; i >= 0; i--) {
    const d = detections[i]!;
    if (d.path.length !== depth || d.kind !== "body" || !nested.has(d.name)) continue;
    if (d.path.every((p, j) => p === container[j])) detections.splice(i, 1);
  }
}

/** Where a signature with this offset may start in an object (null: it cannot match here). */
export function startRange(o: OffsetSpec, size: number, exe: ExeInfo | null): StartRange | null {
  switch (o.kind) {
    case "any":
      return { lo: 0, hi: size, endMax: size };
    case "abs":
      return o.n > size ? null : { lo: o.n, hi: o.n + o.shift, endMax: size };
    case "eof": {
      const lo = size - o.n;
      return lo < 0 ? null : { lo, hi: lo + o.shift, endMax: size };
    }
    case "ep": {
      if (!exe || exe.entry === null) return null;
      const lo = exe.entry + o.n;
      return lo < 0 ? null : { lo, hi: lo + o.shift, endMax: size };
    }
    case "section": {
      const s = exe?.sections[o.index];
      return s ? { lo: s.offset + o.n, hi: s.offset + o.n + o.shift, endMax: size } : null;
    }
    case "last-section": {
      const s = exe?.sections[exe.sections.length - 1];
      return s ? { lo: s.offset + o.n, hi: s.offset + o.n + o.shift, endMax: size } : null;
    }
    case "section-entire": {
      const s = exe?.sections[o.index];
      return s && s.size > 0
        ? { lo: s.offset, hi: s.offset + s.size - 1, endMax: Math.min(size, s.offset + s.size) }
        : null;
    }
  }
}
