/**
 * The validator is the agent's code (issue 12 item 16, the CF-291 lesson):
 * before the vendor signs or releases content, it runs through exactly what
 * an agent will run — the handler's validate and load, in that handler's
 * host group, in a host process started from this same executable, inside
 * the same sandbox and with the same limits (HostManager, default `hosts`
 * configuration). Content the agent would reject is refused here, with the
 * handler's own error code; nothing is signed or published.
 *
 * One piece for every content type: `contentctl pack --type T` validates
 * any type registered in the executable; `datasets pack`, `rules pack` and
 * `release start` call the same function. A type with no handler is refused
 * (HND_UNKNOWN_TYPE): no agent built from this code would install it.
 * There is deliberately no option to skip this.
 *
 * V1 the package fits the handler's maxPackageBytes (the update client's
 *    UPD_TOO_LARGE, checked before download);
 * V2 `validate` on the staged files, in the host;
 * V3 `load` beside (nothing) live, in the host, then discarded — a defect
 *    that only load sees (CRASH-ON-LOAD, a rule the Lua sandbox refuses to
 *    compile) is caught too;
 * V4 a host crash during either is the content's fault (S2), as on an agent.
 *
 * Files a handler needs in its host's work dir to load (the Lua content
 * keyring) are passed by the caller (`workDirFiles`) and placed there the
 * way `agent rules install-key` does.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config.ts";
import { describeError, HandlerError, isOutpostError } from "../errors.ts";
import { type ContentView, viewOverBytes } from "../handler/contract.ts";
import { HandlerRegistry } from "../handler/registry.ts";
import { Logger } from "../log.ts";
import { checkPayload, readPackage } from "../package/open.ts";
import { HostManager } from "./manager.ts";
import { shareWithAgentUser } from "./sandbox.ts";

export interface OfflineValidation {
  /** The handlers built into this executable (the entry point's wiring). */
  registry: HandlerRegistry;
  type: string;
  version: number;
  /** Payload files, payload-relative path → bytes. */
  files: Map<string, Uint8Array>;
  /** Size of the package as agents will download it (V1); default: the payload's total. */
  packageBytes?: number;
  signingTime?: Date;
  /** File name → bytes to place in the host's work dir before it starts (e.g. content-keys.json). */
  workDirFiles?: Record<string, Uint8Array>;
  /** What to name in errors (the source directory or package file). */
  source: string;
}

export interface OfflineResult {
  type: string;
  version: number;
  group: string;
  files: number;
  ms: number;
}

/** Rebuilds `e` with the same code and a message that says where it was found. */
function refusal(e: unknown, o: OfflineValidation, stage: string): HandlerError {
  const d = describeError(e);
  return new HandlerError(
    isOutpostError(e) ? d.code : "HND_VALIDATION_FAILED",
    `${o.source}: ${o.type} v${o.version} would be rejected by the agent (${stage}): ${d.message}`,
    { file: d.file ?? o.source, cause: e },
  );
}

export async function validateOffline(o: OfflineValidation): Promise<OfflineResult> {
  const started = performance.now();
  const handler = o.registry.get(o.type);
  if (!handler) {
    throw new HandlerError(
      "HND_UNKNOWN_TYPE",
      `${o.source}: no handler for content type ${o.type} in this build; no agent would install it (known: ${o.registry.types().join(", ")})`,
      { file: o.source },
    );
  }
  const { manifest } = handler;
  const size = o.packageBytes ?? [...o.files.values()].reduce((n, f) => n + f.length, 0);
  if (size > manifest.maxPackageBytes) {
    throw new HandlerError(
      "UPD_TOO_LARGE",
      `${o.source}: ${size} bytes exceeds the ${o.type} handler's limit of ${manifest.maxPackageBytes}`,
      { file: o.source },
    );
  }
  const policy = o.registry.group(manifest.group);
  const registry = new HandlerRegistry();
  if (policy) registry.registerGroup(policy);
  registry.register(handler, o.registry.moduleOf(o.type));

  // Under /tmp (searchable by every user), so the host drops its uid exactly as on an agent.
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-validate-"));
  const config = parseConfig({ stateDir }).hosts;
  if (o.workDirFiles) placeWorkDirFiles(stateDir, manifest.group, o.workDirFiles, config.user);
  // Host start-up chatter is not the operator's business here; warnings and errors still show.
  const log = new Logger({ component: "validate-offline" }, undefined, "warn");
  const hosts = new HostManager({
    registry,
    log,
    config,
    stateDir,
    emit() {},
    onContentFailure: async () => null,
  });
  const view = contentView(o);
  try {
    try {
      await hosts.validate(o.type, view);
    } catch (e) {
      throw refusal(e, o, "validate");
    }
    try {
      await hosts.discard(await hosts.prepare(o.type, view));
    } catch (e) {
      throw refusal(e, o, "load");
    }
  } finally {
    await hosts.unloadAll();
    rmSync(stateDir, { recursive: true, force: true });
  }
  return {
    type: o.type,
    version: o.version,
    group: manifest.group,
    files: o.files.size,
    ms: Math.round(performance.now() - started),
  };
}

/** The same check from a built package (release start): its payload, as an agent would read it. */
export async function validatePackageOffline(
  bytes: Uint8Array,
  o: Omit<OfflineValidation, "files" | "type" | "version" | "packageBytes"> & { type?: string },
): Promise<OfflineResult> {
  const pkg = readPackage(bytes, { file: o.source });
  const files = checkPayload(pkg, o.source);
  return validateOffline({
    ...o,
    type: o.type ?? pkg.manifest.type,
    version: pkg.manifest.version,
    files,
    packageBytes: bytes.length,
  });
}

function contentView(o: OfflineValidation): ContentView {
  const read = (path: string): Uint8Array => {
    const data = o.files.get(path);
    if (!data) {
      throw new HandlerError(
        "STORE_PATH_NOT_IN_MANIFEST",
        `${o.type} v${o.version}: ${path} is not in the manifest`,
        {
          file: path,
        },
      );
    }
    return data;
  };
  return viewOverBytes({
    type: o.type,
    version: o.version,
    signingTime: (o.signingTime ?? new Date()).toISOString(),
    files: [...o.files.keys()],
    read,
  });
}

/**
 * As `agent rules install-key` leaves them: 0600, or, when root runs a host
 * that drops to the unprivileged user, root-owned 0640 with that user's group.
 */
function placeWorkDirFiles(stateDir: string, group: string, files: Record<string, Uint8Array>, user: string) {
  const dir = join(stateDir, "hosts", group);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const root = process.getuid?.() === 0;
  for (const [name, data] of Object.entries(files)) {
    if (name.includes("/") || name.startsWith(".")) {
      throw new HandlerError(
        "HND_VALIDATION_FAILED",
        `work dir file name ${JSON.stringify(name)} is not a plain name`,
      );
    }
    const target = join(dir, name);
    writeFileSync(target, data, { mode: root ? 0o640 : 0o600 });
    if (root) shareWithAgentUser(target, user);
  }
}
