/**
 * Software inventory tables beyond deb_packages: APT sources, RPM packages
 * (rpm's SQLite database), Python and global npm packages — the files
 * osquery reads on Linux. A host without the package manager has no rows.
 */
import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import type { GenContext, Row, TableDef } from "./context.ts";
import { listDir, readText } from "./read.ts";
import { B, T, table } from "./schema.ts";

/** Key/value fields of an RFC 822-style paragraph (Release files, METADATA, deb822 sources). */
export function rfc822(text: string): Map<string, string> {
  const m = new Map<string, string>();
  let last = "";
  for (const line of text.split("\n")) {
    if (line === "") break;
    if (/^\s/.test(line) && last) {
      m.set(last, `${m.get(last)}\n${line.trim()}`);
      continue;
    }
    const i = line.indexOf(":");
    if (i <= 0) continue;
    last = line.slice(0, i).trim();
    m.set(last, line.slice(i + 1).trim());
  }
  return m;
}

interface AptSource {
  file: string;
  uri: string;
  suite: string;
  components: string[];
}

/** One-line `deb [opts] uri suite comps…` entries and deb822 `Types: deb` stanzas. */
export function parseAptSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  if (file.endsWith(".sources")) {
    for (const para of text.split(/\n\s*\n/)) {
      const f = rfc822(para.replace(/^#.*(\n|$)/gm, "").trim());
      if (!(f.get("Types") ?? "").split(/\s+/).includes("deb") || f.get("Enabled") === "no") continue;
      for (const uri of (f.get("URIs") ?? "").split(/\s+/).filter(Boolean))
        for (const suite of (f.get("Suites") ?? "").split(/\s+/).filter(Boolean))
          out.push({
            file,
            uri,
            suite,
            components: (f.get("Components") ?? "").split(/\s+/).filter(Boolean),
          });
    }
    return out;
  }
  for (const raw of text.split("\n")) {
    const line = raw
      .replace(/#.*$/, "")
      .replace(/\[[^\]]*\]/, "")
      .trim();
    const f = line.split(/\s+/);
    if (f[0] !== "deb" || f.length < 3) continue;
    out.push({ file, uri: f[1]!, suite: f[2]!, components: f.slice(3) });
  }
  return out;
}

/** apt's list-file name for a URI: scheme and credentials dropped, `/` as `_`. */
const listName = (uri: string) =>
  uri
    .replace(/^[a-z+]+:\/\/(?:[^@/]*@)?/, "")
    .replace(/\/+$/, "")
    .replace(/\//g, "_");

export function genAptSources(ctx: GenContext): Row[] {
  const files = [
    "/etc/apt/sources.list",
    ...listDir(`${ctx.root}/etc/apt/sources.list.d`)
      .filter((n) => n.endsWith(".list") || n.endsWith(".sources"))
      .map((n) => `/etc/apt/sources.list.d/${n}`),
  ];
  const rows: Row[] = [];
  for (const file of files) {
    const text = readText(`${ctx.root}${file}`);
    if (text === undefined) continue;
    for (const s of parseAptSources(text, file)) {
      // A suite ending in `/` is a flat repository: no dists/ directory.
      const dist = s.suite.endsWith("/") ? s.suite.replace(/\/+$/, "") : `dists/${s.suite}`;
      const prefix = `${ctx.root}/var/lib/apt/lists/${listName(`${s.uri}/${dist}`)}_`;
      const release = rfc822(
        readText(`${prefix}InRelease`)?.replace(/^-----BEGIN PGP SIGNED MESSAGE-----\nHash: \S+\n\n/, "") ??
          readText(`${prefix}Release`) ??
          "",
      );
      rows.push({
        name: release.get("Label") ?? release.get("Origin") ?? "",
        source: file,
        base_uri: s.uri,
        release: s.suite,
        version: release.get("Version") ?? "",
        maintainer: release.get("Origin") ?? "",
        components: s.components.join(" "),
        architectures: release.get("Architectures") ?? "",
      });
    }
  }
  return rows;
}

/** RPM header tags osquery reports (rpmtag.h). */
const RPMTAG = {
  NAME: 1000,
  VERSION: 1001,
  RELEASE: 1002,
  EPOCH: 1003,
  INSTALLTIME: 1008,
  SIZE: 1009,
  VENDOR: 1011,
  GROUP: 1016,
  ARCH: 1022,
  SOURCERPM: 1044,
  SHA1HEADER: 269,
} as const;

/** Reads the tags of one stored RPM header (no lead/magic): index count, data size, 16-byte entries, data. */
export function parseRpmHeader(blob: Uint8Array): Map<number, string | number> {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const out = new Map<number, string | number>();
  if (b.length < 8) return out;
  const il = b.readUInt32BE(0);
  const dl = b.readUInt32BE(4);
  const dataStart = 8 + il * 16;
  if (il > 100_000 || dataStart + dl > b.length) return out;
  for (let i = 0; i < il; i++) {
    const e = 8 + i * 16;
    const [tag, type, offset] = [b.readUInt32BE(e), b.readUInt32BE(e + 4), b.readUInt32BE(e + 8)];
    const at = dataStart + offset;
    if (at >= b.length) continue;
    if (type === 4) out.set(tag, b.readUInt32BE(at));
    else if (type === 6 || type === 8 || type === 9) out.set(tag, b.toString("utf8", at, b.indexOf(0, at)));
  }
  return out;
}

const RPMDB_SQLITE = ["/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite"];

export function genRpmPackages(ctx: GenContext): Row[] {
  const path = RPMDB_SQLITE.map((p) => `${ctx.root}${p}`).find((p) => existsSync(p));
  if (!path) {
    if (existsSync(`${ctx.root}/var/lib/rpm/Packages`))
      ctx.warn("rpm_packages: Berkeley DB rpm databases are not read; only rpmdb.sqlite");
    return [];
  }
  let db: Database;
  try {
    db = new Database(path, { readonly: true });
  } catch (e) {
    ctx.warn(`rpm_packages: cannot open ${path}: ${(e as Error).message}`);
    return [];
  }
  try {
    const rows: Row[] = [];
    for (const { blob } of db.query("SELECT blob FROM Packages").all() as { blob: Uint8Array }[]) {
      const h = parseRpmHeader(blob);
      const s = (t: number) => String(h.get(t) ?? "");
      if (!h.has(RPMTAG.NAME)) continue;
      rows.push({
        name: s(RPMTAG.NAME),
        version: s(RPMTAG.VERSION),
        release: s(RPMTAG.RELEASE),
        source: s(RPMTAG.SOURCERPM),
        size: Number(h.get(RPMTAG.SIZE) ?? 0),
        sha1: s(RPMTAG.SHA1HEADER),
        arch: s(RPMTAG.ARCH),
        epoch: h.has(RPMTAG.EPOCH) ? Number(h.get(RPMTAG.EPOCH)) : null,
        install_time: Number(h.get(RPMTAG.INSTALLTIME) ?? 0),
        vendor: s(RPMTAG.VENDOR),
        package_group: s(RPMTAG.GROUP),
      });
    }
    return rows;
  } catch (e) {
    ctx.warn(`rpm_packages: ${path}: ${(e as Error).message}`);
    return [];
  } finally {
    db.close();
  }
}

/** System site directories osquery's python_packages searches on Linux. */
function pythonSiteDirs(root: string): string[] {
  const out: string[] = [];
  for (const lib of ["/usr/lib", "/usr/local/lib", "/usr/lib64"]) {
    for (const py of listDir(`${root}${lib}`).filter((n) => /^python[23](\.\d+)?$/.test(n))) {
      for (const site of ["site-packages", "dist-packages"]) {
        if (existsSync(`${root}${lib}/${py}/${site}`)) out.push(`${lib}/${py}/${site}`);
      }
    }
  }
  return out;
}

export function genPythonPackages(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const dir of pythonSiteDirs(ctx.root)) {
    for (const n of listDir(`${ctx.root}${dir}`)) {
      const meta = n.endsWith(".dist-info") ? "METADATA" : n.endsWith(".egg-info") ? "PKG-INFO" : undefined;
      if (!meta) continue;
      const text = readText(`${ctx.root}${dir}/${n}/${meta}`) ?? readText(`${ctx.root}${dir}/${n}`);
      if (!text) continue;
      const f = rfc822(text);
      rows.push({
        name: f.get("Name") ?? "",
        version: f.get("Version") ?? "",
        summary: f.get("Summary") ?? "",
        author: f.get("Author") ?? f.get("Author-email") ?? "",
        license: f.get("License") ?? "",
        path: `${dir}/${n}`,
        directory: dir,
      });
    }
  }
  return rows;
}

const NPM_GLOBAL_DIRS = ["/usr/lib/node_modules", "/usr/local/lib/node_modules"];

export function genNpmPackages(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const dir of NPM_GLOBAL_DIRS) {
    const names = listDir(`${ctx.root}${dir}`).flatMap((n) =>
      n.startsWith("@") ? listDir(`${ctx.root}${dir}/${n}`).map((m) => `${n}/${m}`) : [n],
    );
    for (const n of names) {
      const path = `${dir}/${n}/package.json`;
      let pkg: Record<string, unknown>;
      try {
        pkg = JSON.parse(readText(`${ctx.root}${path}`) ?? "");
      } catch {
        continue;
      }
      const str = (v: unknown) =>
        typeof v === "string"
          ? v
          : v && typeof v === "object" && "name" in v
            ? String((v as { name: unknown }).name)
            : "";
      rows.push({
        name: str(pkg.name),
        version: str(pkg.version),
        description: str(pkg.description),
        author: str(pkg.author),
        license: str(pkg.license),
        homepage: str(pkg.homepage),
        path,
        directory: `${dir}/${n}`,
      });
    }
  }
  return rows;
}

const cols = (...names: string[]): [string, "TEXT"][] => names.map((n) => [n, T]);

export const PACKAGE_TABLES: TableDef[] = [
  {
    schema: table(
      "apt_sources",
      "Current list of APT repositories or software channels.",
      cols("name", "source", "base_uri", "release", "version", "maintainer", "components", "architectures"),
    ),
    gen: genAptSources,
  },
  {
    schema: table("rpm_packages", "RPM packages that are currently installed on the host system.", [
      ...cols("name", "version", "release", "source"),
      ["size", B],
      ...cols("sha1", "arch"),
      ["epoch", B],
      ["install_time", B],
      ...cols("vendor", "package_group"),
    ]),
    gen: genRpmPackages,
  },
  {
    schema: table(
      "python_packages",
      "Python packages installed in a system.",
      cols("name", "version", "summary", "author", "license", "path", "directory"),
    ),
    gen: genPythonPackages,
  },
  {
    schema: table(
      "npm_packages",
      "Node packages installed in a system.",
      cols("name", "version", "description", "author", "license", "homepage", "path", "directory"),
    ),
    gen: genNpmPackages,
  },
];
