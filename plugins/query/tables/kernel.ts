/** Kernel state tables: loaded modules (/proc/modules) and sysctls (/proc/sys), as osquery reads them on Linux. */
import type { GenContext, Row, TableDef } from "./context.ts";
import { listDir, readText } from "./read.ts";
import { B, T, table } from "./schema.ts";

/** /proc/modules: `name size refcount used_by state address`; osquery keeps used_by and status as the kernel writes them. */
export function genKernelModules(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const line of (readText(`${ctx.root}/proc/modules`) ?? "").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    rows.push({ name: f[0]!, size: Number(f[1]), used_by: f[3]!, status: f[4]!, address: f[5]! });
  }
  return rows;
}

/** Files sysctl(8) reads its configuration from, in its order (later wins). */
const SYSCTL_CONF_DIRS = ["/usr/lib/sysctl.d", "/run/sysctl.d", "/etc/sysctl.d"];

function sysctlConfig(root: string): Map<string, string> {
  const files: string[] = [];
  for (const d of SYSCTL_CONF_DIRS)
    for (const n of listDir(`${root}${d}`)) if (n.endsWith(".conf")) files.push(`${d}/${n}`);
  files.push("/etc/sysctl.conf");
  const out = new Map<string, string>();
  for (const f of files) {
    for (const raw of (readText(`${root}${f}`) ?? "").split("\n")) {
      const line = raw.trim();
      if (!line || line.startsWith("#") || line.startsWith(";")) continue;
      const i = line.indexOf("=");
      if (i <= 0) continue;
      out.set(line.slice(0, i).trim().replace(/^-/, "").replace(/\//g, "."), line.slice(i + 1).trim());
    }
  }
  return out;
}

/** Hard cap on /proc/sys entries read per query (the tree is a few thousand files). */
const MAX_SYSCTLS = 20_000;

/** Every readable /proc/sys entry; name uses sysctl's dotted form, oid is empty on Linux (no MIBs). */
export function genSystemControls(ctx: GenContext): Row[] {
  const config = sysctlConfig(ctx.root);
  const rows: Row[] = [];
  const base = `${ctx.root}/proc/sys`;
  const walk = (rel: string, depth: number) => {
    if (depth > 8 || rows.length >= MAX_SYSCTLS) return;
    for (const n of listDir(rel ? `${base}/${rel}` : base)) {
      const p = rel ? `${rel}/${n}` : n;
      const text = readText(`${base}/${p}`);
      if (text === undefined) {
        walk(p, depth + 1); // a directory, or a write-only / restricted entry (walk finds nothing there)
        continue;
      }
      const name = p.replace(/\//g, ".");
      rows.push({
        name,
        oid: "",
        subsystem: p.split("/")[0]!,
        current_value: text.trim().replace(/\s+/g, " "),
        config_value: config.get(name) ?? "",
        type: "string",
        field_name: "",
      });
    }
  };
  walk("", 0);
  return rows;
}

export const KERNEL_TABLES: TableDef[] = [
  {
    schema: table("kernel_modules", "Linux kernel modules both loaded and within the load search path.", [
      ["name", T],
      ["size", B],
      ["used_by", T],
      ["status", T],
      ["address", T],
    ]),
    gen: genKernelModules,
  },
  {
    schema: table("system_controls", "sysctl names, values, and settings information.", [
      ["name", T],
      ["oid", T],
      ["subsystem", T],
      ["current_value", T],
      ["config_value", T],
      ["type", T],
      ["field_name", T],
    ]),
    gen: genSystemControls,
  },
];
