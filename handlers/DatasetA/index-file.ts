/**
 * `signatures.idx`: the compiled columns of a DatasetA payload (compiled.ts),
 * written by `contentctl datasets pack` after it compiled every line, so an
 * agent loads a million signatures by checking arrays instead of compiling
 * them again. Layout (little-endian):
 *
 *   0   8  "OPDSAIX1"
 *   8   4  header length h        12  h  header JSON (IndexHeader), zero-padded to 8
 *   …      sections, each at the 8-aligned offset the header gives:
 *          body.file u16 · body.start u32 · body.line u32
 *          anchors.keys u32 · listStart u32 · listSigs u32 · extOff i8 · extVal u32 · extMask u32
 *          anchors.shortSigs u32 · shortBytes u8 (4 per short anchor)
 *          per algorithm (md5, sha1, sha256): digests u8 · sizes f64 · file u16 · start u32 · line u32
 *
 * Reading checks, in one pass over the arrays: every section inside the file
 * with the declared element count; every line reference inside its file, at
 * the start of a line, of the right kind (.ndb for bodies); anchor words
 * strictly increasing with non-empty lists of valid signatures; digests
 * sorted; sizes whole. And that the index was built from exactly these
 * signature files (size and SHA-256 of each, and of lookup.txt). An index
 * built by an engine with another anchor model or functionality level is
 * not an error: the text is compiled instead (`null`).
 */

import { sha256Hex } from "../../core/crypto/digest.ts";
import { HandlerError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { BYTE_MODEL_GZ_B64 } from "../_shared/matcher/byte-freq.generated.ts";
import type { AnchorColumns } from "../_shared/matcher/matcher.ts";
import { type CompiledSet, type SignatureFile, signatureFiles } from "./compiled.ts";
import { checkHashColumns, DIGEST_BYTES, HASH_ALGOS, type HashColumns, type LineRefs } from "./hash-table.ts";
import { ENGINE_FLEVEL, LOOKUP_FILE, parseLookupFile } from "./signatures.ts";

export const INDEX_FILE = "signatures.idx";
const MAGIC = "OPDSAIX1";
const FORMAT = 1;

/** What the anchors were chosen with: an index from another model would point at other bytes. */
let engineIdMemo: string | undefined;
export function engineId(): string {
  engineIdMemo ??= sha256Hex(
    new TextEncoder().encode(`format ${FORMAT}; flevel ${ENGINE_FLEVEL}; model ${BYTE_MODEL_GZ_B64}`),
  ).slice(0, 16);
  return engineIdMemo;
}

const Digest = lazySchema(() => z.string().check(z.regex(/^[0-9a-f]{64}$/)));
const Count = lazySchema(() => z.int().check(z.gte(0), z.lte(2 ** 32 - 1)));
const IndexHeader = lazySchema(() =>
  z.strictObject({
    format: z.literal(FORMAT),
    engine: z.string().check(z.regex(/^[0-9a-f]{16}$/)),
    files: z
      .array(
        z.strictObject({
          path: z.string().check(z.minLength(1), z.maxLength(4096)),
          size: Count,
          sha256: Digest,
        }),
      )
      .check(z.minLength(1)),
    lookup: z.nullable(z.strictObject({ size: Count, sha256: Digest })),
    lookupSignatures: Count,
    flevelSkipped: Count,
    sections: z.record(z.string(), z.tuple([Count, Count])),
  }),
);
type IndexHeader = z.infer<typeof IndexHeader>;

type Typed = Uint8Array | Int8Array | Uint16Array | Uint32Array | Float64Array;
type TypedCtor = { new (b: ArrayBufferLike, o: number, n: number): Typed; BYTES_PER_ELEMENT: number };

function sectionsOf(set: CompiledSet): [string, Typed][] {
  const a = set.anchors;
  const out: [string, Typed][] = [
    ["body.file", set.body.file],
    ["body.start", set.body.start],
    ["body.line", set.body.line],
    ["anchors.keys", a.keys],
    ["anchors.listStart", a.listStart],
    ["anchors.listSigs", a.listSigs],
    ["anchors.extOff", a.extOff],
    ["anchors.extVal", a.extVal],
    ["anchors.extMask", a.extMask],
    ["anchors.shortSigs", a.shortSigs],
    ["anchors.shortBytes", a.shortBytes],
  ];
  for (const algo of HASH_ALGOS) {
    const t = set.hashes[algo];
    out.push(
      [`${algo}.digests`, t.digests],
      [`${algo}.sizes`, t.sizes],
      [`${algo}.file`, t.file],
      [`${algo}.start`, t.start],
      [`${algo}.line`, t.line],
    );
  }
  return out;
}

const pad8 = (n: number) => (n + 7) & ~7;

/** The index of a compiled set; `lookup` is the payload's lookup.txt, if any. */
export function writeIndex(set: CompiledSet, lookup?: Uint8Array): Uint8Array {
  const sections = sectionsOf(set);
  const header: IndexHeader = {
    format: FORMAT,
    engine: engineId(),
    files: set.files.map((f) => ({ path: f.path, size: f.bytes.length, sha256: sha256Hex(f.bytes) })),
    lookup: lookup ? { size: lookup.length, sha256: sha256Hex(lookup) } : null,
    lookupSignatures: set.lookupSignatures,
    flevelSkipped: set.flevelSkipped,
    sections: {},
  };
  // Offsets depend on the header's length, which depends on the offsets: settle it in two rounds.
  let json = "";
  for (let round = 0; round < 3; round++) {
    let at = pad8(12 + Buffer.byteLength(json));
    for (const [name, arr] of sections) {
      header.sections[name] = [at, arr.byteLength];
      at = pad8(at + arr.byteLength);
    }
    const next = JSON.stringify(header);
    if (next === json) break;
    json = next;
  }
  const [lastAt, lastLen] = Object.values(header.sections).at(-1)!;
  const out = new Uint8Array(pad8(lastAt + lastLen));
  out.set(new TextEncoder().encode(MAGIC), 0);
  const hb = new TextEncoder().encode(json);
  new DataView(out.buffer).setUint32(8, hb.length, true);
  out.set(hb, 12);
  for (const [name, arr] of sections) {
    out.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength), header.sections[name]![0]);
  }
  return out;
}

function indexError(message: string): HandlerError {
  return new HandlerError("HND_DATASETA_INDEX", `${INDEX_FILE}: ${message}`, { file: INDEX_FILE });
}

/**
 * The compiled set stored in `bytes`, checked against the payload's files;
 * null when it was built by another engine (compile the text instead).
 */
export function readIndex(raw: Uint8Array, payload: SignatureFile[]): CompiledSet | null {
  if (new Uint32Array([1])[0] !== new Uint32Array(new Uint8Array([1, 0, 0, 0]).buffer)[0])
    throw indexError("this host is big-endian; the index is little-endian");
  // Typed views need aligned offsets; a buffer handed over at an odd offset is copied once.
  const bytes = raw.byteOffset % 8 === 0 ? raw : raw.slice();
  if (bytes.length < 12 || Buffer.from(bytes.subarray(0, 8)).toString("latin1") !== MAGIC)
    throw indexError("not a DatasetA index (bad magic)");
  const hlen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  if (12 + hlen > bytes.length) throw indexError("header runs past the end");
  let header: IndexHeader;
  try {
    const r = IndexHeader.safeParse(
      JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(12, 12 + hlen))),
    );
    if (!r.success) throw indexError(`bad header: ${z.prettifyError(r.error)}`);
    header = r.data;
  } catch (e) {
    if (e instanceof HandlerError) throw e;
    throw indexError(`bad header: ${(e as Error).message}`);
  }
  if (header.engine !== engineId()) return null;

  const files = signatureFiles(payload);
  checkBinding(header, files, payload);

  const section = <T extends Typed>(name: string, ctor: TypedCtor, count?: number): T => {
    const s = header.sections[name];
    if (!s) throw indexError(`section ${name} missing`);
    const [at, len] = s;
    if (at % 8 !== 0 || at < 12 + hlen || at + len > bytes.length)
      throw indexError(`section ${name} out of bounds`);
    if (len % ctor.BYTES_PER_ELEMENT !== 0) throw indexError(`section ${name}: ${len} bytes`);
    const n = len / ctor.BYTES_PER_ELEMENT;
    if (count !== undefined && n !== count)
      throw indexError(`section ${name}: ${n} entries, expected ${count}`);
    return new ctor(bytes.buffer, bytes.byteOffset + at, n) as T;
  };
  const u32 = Uint32Array as unknown as TypedCtor;
  const bodyN = header.sections["body.start"]?.[1] ?? 0;
  const body: LineRefs = {
    file: section(`body.file`, Uint16Array as unknown as TypedCtor, bodyN / 4),
    start: section(`body.start`, u32),
    line: section(`body.line`, u32, bodyN / 4),
  };
  const keys = section<Uint32Array>("anchors.keys", u32);
  const listSigs = section<Uint32Array>("anchors.listSigs", u32);
  const L = listSigs.length;
  const shortSigs = section<Uint32Array>("anchors.shortSigs", u32);
  const anchors: AnchorColumns = {
    keys,
    listStart: section("anchors.listStart", u32, keys.length + 1),
    listSigs,
    extOff: section("anchors.extOff", Int8Array as unknown as TypedCtor, L),
    extVal: section("anchors.extVal", u32, L),
    extMask: section("anchors.extMask", u32, L),
    shortSigs,
    shortBytes: section("anchors.shortBytes", Uint8Array as unknown as TypedCtor, shortSigs.length * 4),
  };
  const hashes = {} as Record<(typeof HASH_ALGOS)[number], HashColumns>;
  for (const algo of HASH_ALGOS) {
    const n = (header.sections[`${algo}.sizes`]?.[1] ?? 0) / 8;
    hashes[algo] = {
      digests: section(`${algo}.digests`, Uint8Array as unknown as TypedCtor, n * DIGEST_BYTES[algo]),
      sizes: section(`${algo}.sizes`, Float64Array as unknown as TypedCtor, n),
      file: section(`${algo}.file`, Uint16Array as unknown as TypedCtor, n),
      start: section(`${algo}.start`, u32, n),
      line: section(`${algo}.line`, u32, n),
    };
    const bad = checkHashColumns(algo, hashes[algo]) ?? checkRefs(hashes[algo], files, false);
    if (bad) throw indexError(`${algo}: ${bad}`);
  }
  const bad = checkRefs(body, files, true) ?? checkAnchors(anchors, body.start.length);
  if (bad) throw indexError(bad);

  const lookupFile = payload.find((f) => f.path === LOOKUP_FILE);
  const lookup = lookupFile
    ? parseLookupFile(new TextDecoder("utf-8", { fatal: true }).decode(lookupFile.bytes), LOOKUP_FILE)
    : new Set<string>();
  return {
    files,
    body,
    anchors,
    hashes,
    lookup,
    lookupSignatures: header.lookupSignatures,
    flevelSkipped: header.flevelSkipped,
  };
}

/** The index names exactly the payload's signature files, byte for byte. */
function checkBinding(header: IndexHeader, files: SignatureFile[], payload: SignatureFile[]): void {
  const stale = () =>
    indexError("built from other signature files than this payload's; rebuild it (contentctl datasets pack)");
  if (header.files.length !== files.length) throw stale();
  header.files.forEach((h, i) => {
    const f = files[i]!;
    if (h.path !== f.path || h.size !== f.bytes.length || h.sha256 !== sha256Hex(f.bytes)) throw stale();
  });
  const lookup = payload.find((f) => f.path === LOOKUP_FILE);
  if (!lookup !== !header.lookup) throw stale();
  if (
    lookup &&
    (lookup.bytes.length !== header.lookup!.size || sha256Hex(lookup.bytes) !== header.lookup!.sha256)
  )
    throw stale();
}

/** Every reference points at the start of a line of a file of the right kind. */
function checkRefs(r: LineRefs, files: SignatureFile[], body: boolean): string | null {
  const n = r.start.length;
  if (r.file.length !== n || r.line.length !== n) return "line reference columns differ in length";
  const ok = files.map((f) => f.path.endsWith(".ndb") === body);
  for (let i = 0; i < n; i++) {
    const fi = r.file[i]!;
    if (fi >= files.length || !ok[fi])
      return `reference ${i} names file ${fi}, not a ${body ? ".ndb" : "hash"} file`;
    const b = files[fi]!.bytes;
    const s = r.start[i]!;
    if (s >= b.length || (s > 0 && b[s - 1] !== 10) || r.line[i]! < 1)
      return `reference ${i} is not a line start`;
  }
  return null;
}

function checkAnchors(a: AnchorColumns, bodies: number): string | null {
  const U = a.keys.length;
  const L = a.listSigs.length;
  if (a.listStart[0] !== 0 || a.listStart[U] !== L) return "anchor lists do not cover their entries";
  for (let u = 0; u < U; u++) {
    if (u > 0 && a.keys[u - 1]! >= a.keys[u]!) return `anchor words not strictly increasing at ${u}`;
    if (a.listStart[u]! >= a.listStart[u + 1]!) return `anchor ${u} has no signatures`;
  }
  for (let j = 0; j < L; j++) {
    if (a.listSigs[j]! >= bodies) return `anchor entry ${j} names signature ${a.listSigs[j]} of ${bodies}`;
    const off = a.extOff[j]!;
    if (off < -8 || off > 8) return `anchor entry ${j}: extension offset ${off}`;
  }
  for (let i = 0; i < a.shortSigs.length; i++) {
    if (a.shortSigs[i]! >= bodies) return `short anchor ${i} names signature ${a.shortSigs[i]} of ${bodies}`;
    const len = a.shortBytes[i * 4]!;
    if (len < 2 || len > 3) return `short anchor ${i} has length ${len}`;
  }
  if (L + a.shortSigs.length !== bodies)
    return `${L + a.shortSigs.length} anchors for ${bodies} body signatures`;
  return null;
}
