/**
 * The AgentSoftware package: the agent executable and a small descriptor.
 *
 *   agent           the executable (ELF, this machine's architecture)
 *   software.json   { "version": "1.4.0", "platform": "linux-x64" }
 *
 * Pure checks, each citing its rule (docs/install.md, "Software updates"):
 *   SW1  software.json is present and matches its schema (semver version, a known platform)
 *   SW2  `agent` is present and not larger than MAX_AGENT_BYTES
 *   SW3  `agent` is a 64-bit little-endian ELF executable (ET_EXEC or ET_DYN)
 *   SW4  its machine and the descriptor's platform are this agent's platform
 * The package's signature, per-file SHA-384 and rollback protection are the
 * update client's (core/update); what the build does at run time is the
 * health probe's (core/install/slots.ts).
 */

import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";

export const SOFTWARE_FILE = "software.json";
export const AGENT_FILE = "agent";
export const MAX_AGENT_BYTES = 256 * 1024 * 1024;
/**
 * What SW3–SW4 read of the executable: the ELF header and then some (a page). The handler declares
 * `agent` headOnly with this many bytes, so the host never receives the whole build.
 */
export const AGENT_HEAD_BYTES = 4096;

/** ELF e_machine values of the platforms the agent ships for. */
const MACHINES = { "linux-x64": 0x3e, "linux-arm64": 0xb7 } as const;
export type Platform = keyof typeof MACHINES;

export function hostPlatform(arch = process.arch): Platform | null {
  return arch === "x64" ? "linux-x64" : arch === "arm64" ? "linux-arm64" : null;
}

export const SoftwareDescriptorSchema = lazySchema(() =>
  z.strictObject({
    version: z
      .string()
      .check(z.regex(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/, "a semantic version such as 1.4.0")),
    platform: z.enum(["linux-x64", "linux-arm64"]),
  }),
);
export type SoftwareDescriptor = z.infer<typeof SoftwareDescriptorSchema>;

export type SoftwareCheck =
  | { ok: true; descriptor: SoftwareDescriptor; bytes: number }
  | { ok: false; rule: "SW1" | "SW2" | "SW3" | "SW4"; file: string; reason: string };

export function checkDescriptor(text: string | undefined): SoftwareCheck | SoftwareDescriptor {
  if (text === undefined) return { ok: false, rule: "SW1", file: SOFTWARE_FILE, reason: "missing" };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, rule: "SW1", file: SOFTWARE_FILE, reason: `not JSON: ${(e as Error).message}` };
  }
  const r = SoftwareDescriptorSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    return {
      ok: false,
      rule: "SW1",
      file: SOFTWARE_FILE,
      reason: `${i?.path.join(".") || "(root)"}: ${i?.message}`,
    };
  }
  return r.data;
}

/** SW2–SW4 on the executable's bytes (only its header is read). */
export function checkExecutable(
  bytes: Uint8Array | undefined,
  size: number,
  platform: Platform,
  host: Platform | null,
): SoftwareCheck | null {
  const bad = (rule: "SW2" | "SW3" | "SW4", reason: string): SoftwareCheck => ({
    ok: false,
    rule,
    file: AGENT_FILE,
    reason,
  });
  if (!bytes) return bad("SW2", "missing");
  if (size > MAX_AGENT_BYTES) return bad("SW2", `${size} bytes, more than ${MAX_AGENT_BYTES}`);
  if (
    size < 64 ||
    bytes.byteLength < 64 ||
    bytes[0] !== 0x7f ||
    bytes[1] !== 0x45 ||
    bytes[2] !== 0x4c ||
    bytes[3] !== 0x46
  )
    return bad("SW3", "not an ELF executable");
  if (bytes[4] !== 2 || bytes[5] !== 1) return bad("SW3", "not a 64-bit little-endian ELF");
  const view = new DataView(bytes.buffer, bytes.byteOffset, 64);
  const type = view.getUint16(16, true);
  if (type !== 2 && type !== 3) return bad("SW3", `ELF type ${type} is neither ET_EXEC nor ET_DYN`);
  const machine = view.getUint16(18, true);
  if (machine !== MACHINES[platform])
    return bad(
      "SW4",
      `ELF machine 0x${machine.toString(16)} does not match the declared platform ${platform}`,
    );
  if (platform !== host)
    return bad("SW4", `built for ${platform}; this agent runs on ${host ?? process.arch}`);
  return null;
}

/**
 * The whole package: descriptor, then executable. `read` may give only the executable's first
 * AGENT_HEAD_BYTES, with `sizeOf` its whole size (the handler's headOnly view).
 */
export function checkSoftware(
  read: (path: string) => Uint8Array | undefined,
  host: Platform | null = hostPlatform(),
  sizeOf: (path: string) => number = (path) => read(path)?.byteLength ?? 0,
): SoftwareCheck {
  const d = read(SOFTWARE_FILE);
  const descriptor = checkDescriptor(d === undefined ? undefined : new TextDecoder().decode(d));
  if ("ok" in descriptor) return descriptor;
  const exe = read(AGENT_FILE);
  const size = exe ? sizeOf(AGENT_FILE) : 0;
  const problem = checkExecutable(exe, size, descriptor.platform, host);
  if (problem) return problem;
  return { ok: true, descriptor, bytes: size };
}
