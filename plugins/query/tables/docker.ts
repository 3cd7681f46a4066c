/**
 * docker_containers from the Docker Engine API on its unix socket, as
 * osquery reads it (GET /containers/json?all=1, then /containers/<id>/json
 * per container), namespaces from /proc/<pid>/ns. Generators are
 * synchronous, so the HTTP request goes through curl(1). No socket, no
 * daemon answering, or no curl: no rows (with a note when Docker is there
 * but cannot be asked).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { GenContext, Row, TableDef } from "./context.ts";
import { readLink } from "./read.ts";
import { B, I, T, table } from "./schema.ts";

export const DOCKER_SOCKET = "/var/run/docker.sock";
const CURL = ["/usr/bin/curl", "/bin/curl"];
const NAMESPACES = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

function get(ctx: GenContext, socket: string, curl: string, path: string): unknown {
  const r = spawnSync(curl, ["-sf", "--max-time", "5", "--unix-socket", socket, `http://localhost${path}`], {
    encoding: "utf8",
    timeout: 10_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) {
    ctx.warn(`docker_containers: GET ${path} on ${socket} failed (curl exit ${r.status ?? r.signal})`);
    return undefined;
  }
  try {
    return JSON.parse(r.stdout);
  } catch {
    ctx.warn(`docker_containers: GET ${path}: not JSON`);
    return undefined;
  }
}

type Json = Record<string, unknown>;
const s = (v: unknown) => (typeof v === "string" ? v : "");
const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

export function genDockerContainers(ctx: GenContext): Row[] {
  const socket = `${ctx.root}${DOCKER_SOCKET}`;
  if (!existsSync(socket)) return [];
  const curl = CURL.find((c) => existsSync(c));
  if (!curl) {
    ctx.warn("docker_containers: curl is needed to ask the Docker socket");
    return [];
  }
  const containers = get(ctx, socket, curl, "/containers/json?all=1");
  if (!Array.isArray(containers)) return [];
  const rows: Row[] = [];
  for (const c of containers as Json[]) {
    const id = s(c.Id);
    const inspect = obj(get(ctx, socket, curl, `/containers/${encodeURIComponent(id)}/json`));
    const state = obj(inspect.State);
    const host = obj(inspect.HostConfig);
    const config = obj(inspect.Config);
    const pid = Number(state.Pid ?? 0);
    const ns = (n: string) =>
      pid > 0 ? (/\[(\d+)\]/.exec(readLink(`${ctx.root}/proc/${pid}/ns/${n}`) ?? "")?.[1] ?? "") : "";
    const row: Row = {
      id,
      name: list(c.Names)[0] ?? s(inspect.Name),
      image: s(c.Image),
      image_id: s(c.ImageID),
      command: s(c.Command),
      created: Number(c.Created ?? 0),
      state: s(c.State),
      status: s(c.Status),
      pid,
      path: s(inspect.Path),
      config_entrypoint: list(config.Entrypoint).join(", "),
      started_at: s(state.StartedAt),
      finished_at: s(state.FinishedAt),
      privileged: host.Privileged === true ? 1 : 0,
      security_options: list(host.SecurityOpt).join(", "),
      env_variables: list(config.Env).join(", "),
      readonly_rootfs: host.ReadonlyRootfs === true ? 1 : 0,
    };
    for (const n of NAMESPACES) row[`${n}_namespace`] = ns(n);
    rows.push(row);
  }
  return rows;
}

export const DOCKER_TABLES: TableDef[] = [
  {
    schema: table("docker_containers", "Docker containers information.", [
      ["id", T],
      ["name", T],
      ["image", T],
      ["image_id", T],
      ["command", T],
      ["created", B],
      ["state", T],
      ["status", T],
      ["pid", B],
      ["path", T],
      ["config_entrypoint", T],
      ["started_at", T],
      ["finished_at", T],
      ["privileged", I],
      ["security_options", T],
      ["env_variables", T],
      ["readonly_rootfs", I],
      ...NAMESPACES.map((n): [string, "TEXT"] => [`${n}_namespace`, T]),
    ]),
    gen: genDockerContainers,
  },
];
