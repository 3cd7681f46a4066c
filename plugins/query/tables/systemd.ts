/**
 * systemd_units through systemctl(1) (osquery asks systemd over D-Bus; the
 * query host has no bus access, systemctl prints the same unit list and
 * properties). No systemd running (/run/systemd/system absent): no rows.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { GenContext, Row, TableDef } from "./context.ts";
import { T, table } from "./schema.ts";

const SYSTEMCTL = ["/usr/bin/systemctl", "/bin/systemctl"];
const PROPS = ["Id", "Following", "Job", "FragmentPath", "SourcePath", "User"];

/** sd-bus object path label escaping: [A-Za-z0-9] kept, every other byte as _xx. */
export function busPath(unit: string): string {
  const escaped = [...Buffer.from(unit, "utf8")]
    .map((b) =>
      /[A-Za-z0-9]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `_${b.toString(16).padStart(2, "0")}`,
    )
    .join("");
  return `/org/freedesktop/systemd1/unit/${escaped}`;
}

/** `systemctl list-units --all --plain --no-legend --full` lines: UNIT LOAD ACTIVE SUB DESCRIPTION. */
export function parseListUnits(
  text: string,
): { id: string; load: string; active: string; sub: string; description: string }[] {
  const out: { id: string; load: string; active: string; sub: string; description: string }[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(?:●\s*)?(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ id: m[1]!, load: m[2]!, active: m[3]!, sub: m[4]!, description: m[5]!.trim() });
  }
  return out;
}

/** `systemctl show -p … UNIT…` blocks (KEY=value lines, blank line between units). */
export function parseShow(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const block of text.split(/\n\n+/)) {
    const props = new Map<string, string>();
    for (const line of block.split("\n")) {
      const i = line.indexOf("=");
      if (i > 0) props.set(line.slice(0, i), line.slice(i + 1));
    }
    const id = props.get("Id");
    if (id) out.set(id, props);
  }
  return out;
}

export function genSystemdUnits(ctx: GenContext): Row[] {
  if (!existsSync(`${ctx.root}/run/systemd/system`)) return [];
  const systemctl = SYSTEMCTL.find((p) => existsSync(p));
  if (!systemctl) {
    ctx.warn("systemd_units: systemd runs but systemctl is not installed");
    return [];
  }
  const run = (args: string[]) =>
    spawnSync(systemctl, args, { encoding: "utf8", timeout: 15_000, maxBuffer: 64 * 1024 * 1024 });
  const listed = run(["list-units", "--all", "--plain", "--no-legend", "--full", "--no-pager"]);
  if (listed.status !== 0) {
    ctx.warn(`systemd_units: systemctl list-units failed: ${(listed.stderr ?? "").trim()}`);
    return [];
  }
  const units = parseListUnits(listed.stdout);
  const shown = units.length
    ? run(["show", "--no-pager", `-p`, PROPS.join(","), "--", ...units.map((u) => u.id)])
    : undefined;
  const props = parseShow(shown?.stdout ?? "");
  return units.map((u) => {
    const p = props.get(u.id);
    // Job=<id> <type>? systemctl prints "Job=" empty or the job number.
    const job = p?.get("Job") ?? "";
    return {
      id: u.id,
      description: u.description,
      load_state: u.load,
      active_state: u.active,
      sub_state: u.sub,
      following: p?.get("Following") ?? "",
      object_path: busPath(u.id),
      job_id: job ? Number.parseInt(job, 10) || 0 : 0,
      job_type: "",
      job_path: job ? `/org/freedesktop/systemd1/job/${Number.parseInt(job, 10)}` : "/",
      fragment_path: p?.get("FragmentPath") ?? "",
      user: p?.get("User") ?? "",
      source_path: p?.get("SourcePath") ?? "",
    };
  });
}

export const SYSTEMD_TABLES: TableDef[] = [
  {
    schema: table("systemd_units", "Track systemd units.", [
      ["id", T],
      ["description", T],
      ["load_state", T],
      ["active_state", T],
      ["sub_state", T],
      ["following", T],
      ["object_path", T],
      ["job_id", "BIGINT"],
      ["job_type", T],
      ["job_path", T],
      ["fragment_path", T],
      ["user", T],
      ["source_path", T],
    ]),
    gen: genSystemdUnits,
  },
];
