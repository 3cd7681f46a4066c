/**
 * Host groups and what each may do. A group is one host process; its policy
 * is the most any handler in it may declare. The core knows no concrete
 * group: the entry point registers them (handlers/groups.ts) as data, and
 * this module only checks declarations against them and turns the
 * declarations of a group's handlers into the sandbox its host process gets.
 *
 * Two rules, each cited where it is checked:
 *  G1 a handler's declared privileges never exceed its group's allowance
 *     (checked at build time by build.ts and handlers/groups.test.ts, and
 *     again by the host before any content is loaded);
 *  G2 a host process gets the union of what its loadable handlers declared,
 *     not the group's whole allowance (least privilege inside the allowance).
 *  G3 groups that share a process (`process`) have identical allowances:
 *     sharing saves a runtime's memory, never widens what any of them may do
 *     (a group whose allowance differs runs in its own process instead).
 */

import { HandlerError } from "../errors.ts";
import type { HandlerManifest } from "../handler/contract.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

/** Linux capabilities a root group may keep (the rest leave the bounding set). */
const CAPABILITY_RE = /^[a-z_]{2,32}$/;

export const GroupPolicySchema = lazySchema(() =>
  z.strictObject({
    name: z.string().check(z.regex(/^[a-z][a-z0-9-]{0,31}$/)),
    description: z.string().check(z.minLength(1)),
    /** The identity the host may run as: `agent` (dedicated unprivileged uid) or `root`. */
    runAs: z.enum(["agent", "root"]),
    /** Path globs handlers may declare, read-only or read-write. `${stateDir}` and `${installDir}` expand at run time. */
    fs: z.prefault(
      z.strictObject({
        read: z._default(z.array(z.string().check(z.minLength(1))), []),
        write: z._default(z.array(z.string().check(z.minLength(1))), []),
      }),
      {},
    ),
    /** Endpoints handlers may declare; `https:*` allows any https host, `"none"` nothing. */
    net: z.union([z.literal("none"), z.array(z.string().check(z.minLength(1))).check(z.minLength(1))]),
    exec: z.boolean(),
    agent: z._default(z.boolean(), false),
    /** Handlers may declare privileges.hostView (the supervisor reads the process view for them). */
    hostView: z._default(z.boolean(), false),
    /** Capabilities a root host keeps; every other capability leaves its bounding set. */
    capabilities: z._default(z.array(z.string().check(z.regex(CAPABILITY_RE))), []),
    /**
     * The host process this group runs in, when it shares one with other groups (G3: only groups with
     * identical allowances). Default: a process of its own, named after the group.
     */
    process: z.optional(z.string().check(z.regex(/^[a-z][a-z0-9-]{0,31}$/))),
  }),
);

export type GroupPolicy = z.infer<typeof GroupPolicySchema>;
export type GroupPolicyInput = z.input<typeof GroupPolicySchema>;

export function defineGroup(input: GroupPolicyInput): GroupPolicy {
  return GroupPolicySchema.parse(input);
}

const GLOB_CHARS = /[*?[\]{}]/;

/** Whether every path `inner` can match is also matched by `outer` (conservative: false when unsure). */
export function globCovers(outerGlob: string, innerGlob: string): boolean {
  // `${stateDir}`-style placeholders are literal path prefixes, not brace patterns.
  const literal = (g: string) => g.replace(/\$\{(\w+)\}/g, "@$1@");
  const outer = literal(outerGlob);
  const inner = literal(innerGlob);
  if (outer === inner) return true;
  if (outer.endsWith("/**")) {
    const base = outer.slice(0, -3);
    if (!GLOB_CHARS.test(base)) return inner === base || inner.startsWith(`${base}/`);
  }
  if (!GLOB_CHARS.test(inner)) return new Bun.Glob(outer).match(inner);
  return false;
}

function endpointCovered(allowed: readonly string[], endpoint: string): boolean {
  const e = endpoint.toLowerCase();
  return allowed.some((a) => {
    const x = a.toLowerCase();
    if (x === e) return true;
    // `https:*` admits any https host; the capability still pins the declared one.
    return x.endsWith(":*") && e.startsWith(x.slice(0, -1));
  });
}

/**
 * G1: the first privilege of `manifest` that its group does not allow, as
 * a HandlerError naming the handler, the group and the privilege; null when
 * the declaration fits.
 */
export function privilegeViolation(
  manifest: HandlerManifest,
  group: GroupPolicy | undefined,
): HandlerError | null {
  const who = `${manifest.name} (group ${manifest.group})`;
  if (!group) {
    return new HandlerError(
      "HND_UNKNOWN_GROUP",
      `${who}: no host group named ${manifest.group} is registered`,
      { details: { handler: manifest.name, group: manifest.group } },
    );
  }
  const exceed = (privilege: string, allowed: string) =>
    new HandlerError(
      "HND_PRIVILEGES_EXCEED_GROUP",
      `${who}: privileges.${privilege} exceeds the group's allowance (${allowed})`,
      { details: { handler: manifest.name, group: group.name, privilege } },
    );
  const p = manifest.privileges;
  if (p.runAs === "root" && group.runAs !== "root") return exceed("runAs root", "runAs agent");
  if (p.fs.mode !== "none") {
    const readable = [...group.fs.read, ...group.fs.write];
    const pool = p.fs.mode === "read-write" ? group.fs.write : readable;
    for (const path of p.fs.paths) {
      if (!pool.some((g) => globCovers(g, path))) {
        const allowed = pool.length
          ? `fs ${p.fs.mode === "read-write" ? "write" : "read"}: ${pool.join(", ")}`
          : "fs: none";
        return exceed(`fs ${p.fs.mode} ${path}`, allowed);
      }
    }
  }
  if (p.net !== "none") {
    for (const endpoint of p.net) {
      if (group.net === "none" || !endpointCovered(group.net, endpoint)) {
        return exceed(`net ${endpoint}`, group.net === "none" ? "net: none" : `net: ${group.net.join(", ")}`);
      }
    }
  }
  if (p.exec && !group.exec) return exceed("exec", "exec: false");
  if (p.agent && !group.agent) return exceed("agent", "agent: false");
  if (p.hostView && !group.hostView) return exceed("hostView", "hostView: false");
  return null;
}

/** A group's allowance without its names: what G3 compares. */
function allowance(g: GroupPolicy): string {
  const { name: _n, description: _d, process: _p, ...rest } = g;
  return JSON.stringify(rest, (_k, v) => (Array.isArray(v) ? [...v].sort() : v));
}

/**
 * G3: the process each group runs in. Groups naming the same `process` share it when their
 * allowances are identical; a group whose allowance differs from the first group of its process
 * (in registration order) keeps a process of its own, and is reported in `refused`.
 */
export function processesOf(groups: readonly GroupPolicy[]): {
  processOf: Map<string, string>;
  refused: HandlerError[];
} {
  const processOf = new Map<string, string>();
  const first = new Map<string, GroupPolicy>();
  const refused: HandlerError[] = [];
  const names = new Set(groups.map((g) => g.name));
  for (const g of groups) {
    const p = g.process ?? g.name;
    const lead = first.get(p);
    if (p !== g.name && names.has(p) && (groups.find((x) => x.name === p)?.process ?? p) !== p) {
      // A process named after a group that itself runs elsewhere would be two things under one name.
      refused.push(
        new HandlerError(
          "HND_GROUP_PROCESS_CONFLICT",
          `group ${g.name}: process ${p} is the name of another group`,
          {
            details: { group: g.name, process: p },
          },
        ),
      );
      processOf.set(g.name, g.name);
      continue;
    }
    if (!lead) {
      first.set(p, g);
      processOf.set(g.name, p);
    } else if (allowance(lead) === allowance(g)) {
      processOf.set(g.name, p);
    } else {
      refused.push(
        new HandlerError(
          "HND_GROUP_PROCESS_CONFLICT",
          `group ${g.name}: its allowance differs from group ${lead.name}'s, so it cannot share process ${p}`,
          { details: { group: g.name, process: p, with: lead.name } },
        ),
      );
      processOf.set(g.name, g.name);
    }
  }
  return { processOf, refused };
}

/** G1 over a whole registry: one error per handler that does not fit its group (build.ts fails on any). */
export function registryViolations(registry: HandlerRegistry): HandlerError[] {
  return registry.types().flatMap((type) => {
    const manifest = registry.require(type).manifest;
    const v = privilegeViolation(manifest, registry.group(manifest.group));
    return v ? [v] : [];
  });
}

/** Values the `${…}` placeholders in path globs stand for. */
export interface PathVars {
  stateDir: string;
  installDir: string;
}

export function expandPath(glob: string, vars: PathVars): string {
  return glob.replaceAll(`\${stateDir}`, vars.stateDir).replaceAll(`\${installDir}`, vars.installDir);
}

/** A manifest with placeholders expanded, as the capability layer and the sandbox see it. */
export function expandManifest(manifest: HandlerManifest, vars: PathVars): HandlerManifest {
  const fs = manifest.privileges.fs;
  if (fs.mode === "none") return manifest;
  return {
    ...manifest,
    privileges: { ...manifest.privileges, fs: { ...fs, paths: fs.paths.map((g) => expandPath(g, vars)) } },
  };
}

/**
 * G2: what a host process needs, computed from the (already checked)
 * declarations of the handlers it runs. Paths are expanded globs; the
 * sandbox widens each to its literal directory prefix for Landlock.
 */
export interface SandboxSpec {
  group: string;
  runAs: "agent" | "root";
  fsRead: string[];
  fsWrite: string[];
  exec: boolean;
  /** "none", or TCP ports handlers may connect to. */
  net: "none" | { connectPorts: number[]; endpoints: string[] };
  agent: boolean;
  capabilities: string[];
}

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443, dns: 53 };

export function portOf(endpoint: string): number {
  if (endpoint.toLowerCase() === "dns") return 53;
  const m = /^(https?):([^:]+)(?::(\d+))?$/i.exec(endpoint);
  if (!m) throw new HandlerError("HND_BAD_ENDPOINT", `${endpoint}: not an endpoint`);
  return m[3] ? Number(m[3]) : DEFAULT_PORTS[m[1]!.toLowerCase()]!;
}

export function sandboxFor(
  group: GroupPolicy,
  manifests: readonly HandlerManifest[],
  vars: PathVars,
): SandboxSpec {
  const read = new Set<string>();
  const write = new Set<string>();
  const endpoints = new Set<string>();
  let exec = false;
  let agent = false;
  let root = false;
  for (const m of manifests) {
    const p = expandManifest(m, vars).privileges;
    if (p.fs.mode !== "none") for (const g of p.fs.paths) (p.fs.mode === "read-write" ? write : read).add(g);
    if (p.net !== "none") for (const e of p.net) endpoints.add(e);
    exec ||= p.exec;
    agent ||= p.agent;
    root ||= p.runAs === "root";
  }
  const runAs = root && group.runAs === "root" ? "root" : "agent";
  return {
    group: group.name,
    runAs,
    fsRead: [...read].sort(),
    fsWrite: [...write].sort(),
    exec,
    net: endpoints.size
      ? {
          connectPorts: [...new Set([...endpoints].map(portOf))].sort((a, b) => a - b),
          endpoints: [...endpoints].sort(),
        }
      : "none",
    agent,
    capabilities: runAs === "root" ? [...group.capabilities].sort() : [],
  };
}

/** The directory Landlock grants for a glob: its longest literal directory prefix. */
export function landlockBase(glob: string): string {
  const first = glob.search(GLOB_CHARS);
  if (first < 0) return glob;
  const prefix = glob.slice(0, first);
  const slash = prefix.lastIndexOf("/");
  return slash <= 0 ? "/" : prefix.slice(0, slash);
}
