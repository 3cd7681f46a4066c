/**
 * The file trees bench/onaccess.ts reads: a synthetic one (N equal files of
 * pseudo-random bytes, the best case for a cache and the worst for per-file
 * overhead) and a realistic one copied from this machine (/usr/bin,
 * /usr/lib/x86_64-linux-gnu and /usr/share/doc: ELF executables and
 * libraries, scripts, compressed and plain docs, from a few hundred bytes
 * to 4 MiB). Selection is deterministic (sorted, every k-th file) so runs
 * on one machine read the same files.
 */
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { datasetFromSources } from "../handlers/DatasetA/dataset.ts";

export interface Tree {
  name: string;
  dir: string;
  files: number;
  bytes: number;
  /** Median file size (bytes). */
  medianBytes: number;
}

export function syntheticTree(dir: string, n: number, kb: number): Tree {
  for (let i = 0; i < n; i++) {
    const sub = join(dir, `d${i % 20}`);
    if (i < 20) mkdirSync(sub, { recursive: true });
    const b = Buffer.alloc(kb * 1024);
    for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
    writeFileSync(join(sub, `f${i}.bin`), b);
  }
  return { name: `synthetic ${n} × ${kb} KiB`, dir, files: n, bytes: n * kb * 1024, medianBytes: kb * 1024 };
}

const SOURCES: { from: string; to: string; every: number; recursive: boolean }[] = [
  { from: "/usr/bin", to: "bin", every: 1, recursive: false },
  { from: "/usr/lib/x86_64-linux-gnu", to: "lib", every: 2, recursive: false },
  { from: "/usr/share/doc", to: "doc", every: 3, recursive: true },
];
const MAX_FILE_BYTES = 4 * 1024 * 1024;

function regularFiles(dir: string, recursive: boolean, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory() && recursive) regularFiles(p, recursive, out);
    else if (st.isFile() && st.size > 0 && st.size <= MAX_FILE_BYTES) out.push(p);
  }
  return out;
}

/** Up to `maxFiles` files copied from the system, spread over the three sources. */
export function realisticTree(dir: string, maxFiles: number): Tree {
  const sizes: number[] = [];
  const perSource = Math.ceil(maxFiles / SOURCES.length);
  for (const s of SOURCES) {
    const picked = regularFiles(s.from, s.recursive)
      .filter((_, i) => i % s.every === 0)
      .slice(0, perSource);
    for (const p of picked) {
      const to = join(dir, s.to, relative(s.from, p));
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(p, to);
      sizes.push(lstatSync(to).size);
    }
  }
  sizes.sort((a, b) => a - b);
  return {
    name: `realistic (/usr/bin, /usr/lib/x86_64-linux-gnu, /usr/share/doc; ${sizes.length} files)`,
    dir,
    files: sizes.length,
    bytes: sizes.reduce((a, b) => a + b, 0),
    medianBytes: sizes[Math.floor(sizes.length / 2)] ?? 0,
  };
}

/** Names of the signatures (hash or body) that detect something in the trees, scanned in-process. */
export async function detectedNames(hsb: string, ndb: string, trees: Tree[]): Promise<Set<string>> {
  const dataset = datasetFromSources([
    { path: "main.hsb", text: hsb },
    { path: "main.ndb", text: ndb },
  ]);
  const names = new Set<string>();
  for (const t of trees) {
    for (const p of regularFiles(t.dir, true)) {
      const out = await dataset.scan(new Uint8Array(readFileSync(p)), { spillDir: tmpdir() });
      for (const d of out.detections) names.add(d.name);
    }
  }
  return names;
}
