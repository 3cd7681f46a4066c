/**
 * Browser extension tables, per user: Chrome/Chromium family and Opera
 * (manifest.json under each profile's Extensions/<id>/<version>), Firefox
 * (each profile's extensions.json). Users without the browser have no rows.
 */
import type { GenContext, Row, TableDef } from "./context.ts";
import { homes, listDir, readText } from "./read.ts";
import { B, I, T, table } from "./schema.ts";

/** Chromium-family profile roots under a Linux home, with osquery's browser_type names. */
const CHROME_ROOTS: [string, string][] = [
  ["chrome", ".config/google-chrome"],
  ["chrome_beta", ".config/google-chrome-beta"],
  ["chrome_dev", ".config/google-chrome-unstable"],
  ["chromium", ".config/chromium"],
  ["brave", ".config/BraveSoftware/Brave-Browser"],
  ["edge", ".config/microsoft-edge"],
  ["vivaldi", ".config/vivaldi"],
];

function json(path: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(readText(path) ?? "");
    return v && typeof v === "object" ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const s = (v: unknown) => (typeof v === "string" ? v : "");
const list = (v: unknown) => (Array.isArray(v) ? v.filter((x) => typeof x === "string").join(", ") : "");

/** Each installed extension version directory with a parseable manifest. */
function manifests(
  root: string,
  extDir: string,
): { id: string; path: string; manifest: Record<string, unknown> }[] {
  const out: { id: string; path: string; manifest: Record<string, unknown> }[] = [];
  for (const id of listDir(`${root}${extDir}`)) {
    for (const version of listDir(`${root}${extDir}/${id}`)) {
      const path = `${extDir}/${id}/${version}`;
      const manifest = json(`${root}${path}/manifest.json`);
      if (manifest) out.push({ id, path, manifest });
    }
  }
  return out;
}

export function genChromeExtensions(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const h of homes(ctx.root)) {
    for (const [browser, rel] of CHROME_ROOTS) {
      const base = `${h.directory}/${rel}`;
      for (const profile of listDir(`${ctx.root}${base}`)) {
        const profilePath = `${base}/${profile}`;
        const prefs = json(`${ctx.root}${profilePath}/Preferences`);
        const settings = ((prefs?.extensions as Record<string, unknown> | undefined)?.settings ??
          {}) as Record<string, Record<string, unknown>>;
        for (const { id, path, manifest: m } of manifests(ctx.root, `${profilePath}/Extensions`)) {
          const st = settings[id];
          rows.push({
            browser_type: browser,
            uid: h.uid,
            name: s(m.name),
            profile: s((prefs?.profile as Record<string, unknown> | undefined)?.name),
            profile_path: profilePath,
            referenced_identifier: st ? id : "",
            identifier: id,
            version: s(m.version),
            description: s(m.description),
            default_locale: s(m.default_locale),
            current_locale: "",
            update_url: s(m.update_url),
            author: s(m.author),
            persistent: (m.background as Record<string, unknown> | undefined)?.persistent === true ? 1 : 0,
            path,
            permissions: list(m.permissions),
            permissions_json: JSON.stringify(m.permissions ?? []),
            optional_permissions: list(m.optional_permissions),
            optional_permissions_json: JSON.stringify(m.optional_permissions ?? []),
            manifest_hash: "",
            referenced: st ? 1 : 0,
            from_webstore: st?.from_webstore === true ? "true" : st ? "false" : "",
            state: st?.state === undefined ? "" : String(st.state),
            install_time: s(st?.install_time),
            install_timestamp: st?.install_time ? Math.floor(Number(st.install_time) / 1e6 - 11644473600) : 0,
            manifest_json: JSON.stringify(m),
            key: s(m.key),
          });
        }
      }
    }
  }
  return rows;
}

export function genOperaExtensions(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const h of homes(ctx.root)) {
    for (const { id, path, manifest: m } of manifests(ctx.root, `${h.directory}/.config/opera/Extensions`)) {
      rows.push({
        uid: h.uid,
        name: s(m.name),
        identifier: id,
        version: s(m.version),
        description: s(m.description),
        locale: s(m.default_locale),
        update_url: s(m.update_url),
        author: s(m.author),
        persistent: (m.background as Record<string, unknown> | undefined)?.persistent === true ? 1 : 0,
        path,
      });
    }
  }
  return rows;
}

export function genFirefoxAddons(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const h of homes(ctx.root)) {
    const base = `${h.directory}/.mozilla/firefox`;
    for (const profile of listDir(`${ctx.root}${base}`)) {
      const doc = json(`${ctx.root}${base}/${profile}/extensions.json`);
      for (const a of (Array.isArray(doc?.addons) ? doc.addons : []) as Record<string, unknown>[]) {
        const locale = (a.defaultLocale ?? {}) as Record<string, unknown>;
        rows.push({
          uid: h.uid,
          name: s(locale.name),
          identifier: s(a.id),
          creator: s(locale.creator),
          type: s(a.type),
          version: s(a.version),
          description: s(locale.description),
          source_url: s(a.sourceURI),
          visible: a.visible === true ? 1 : 0,
          active: a.active === true ? 1 : 0,
          disabled: a.userDisabled === true ? 1 : 0,
          autoupdate: a.applyBackgroundUpdates === 1 || a.applyBackgroundUpdates === 2 ? 1 : 0,
          location: s(a.location),
          path: s(a.path),
        });
      }
    }
  }
  return rows;
}

const cols = (...names: string[]): [string, "TEXT"][] => names.map((n) => [n, T]);

export const BROWSER_TABLES: TableDef[] = [
  {
    schema: table("chrome_extensions", "Chrome-based browser extensions.", [
      ["browser_type", T],
      ["uid", B],
      ...cols(
        "name",
        "profile",
        "profile_path",
        "referenced_identifier",
        "identifier",
        "version",
        "description",
        "default_locale",
        "current_locale",
        "update_url",
        "author",
      ),
      ["persistent", I],
      ...cols(
        "path",
        "permissions",
        "permissions_json",
        "optional_permissions",
        "optional_permissions_json",
        "manifest_hash",
      ),
      ["referenced", B],
      ...cols("from_webstore", "state", "install_time"),
      ["install_timestamp", B],
      ...cols("manifest_json", "key"),
    ]),
    gen: genChromeExtensions,
  },
  {
    schema: table("opera_extensions", "Opera browser extensions.", [
      ["uid", B],
      ...cols("name", "identifier", "version", "description", "locale", "update_url", "author"),
      ["persistent", I],
      ["path", T],
    ]),
    gen: genOperaExtensions,
  },
  {
    schema: table("firefox_addons", "Firefox browser extensions, webapps, and addons.", [
      ["uid", B],
      ...cols("name", "identifier", "creator", "type", "version", "description", "source_url"),
      ["visible", I],
      ["active", I],
      ["disabled", I],
      ["autoupdate", I],
      ...cols("location", "path"),
    ]),
    gen: genFirefoxAddons,
  },
];
