/**
 * A/B software slots: the new executable goes into the idle slot, the
 * `current` symlink is flipped with one rename, and the new agent must pass
 * a health probe before a deadline — otherwise `current` is flipped back,
 * the build's hash is marked bad, and the outcome recorded. Every durable
 * step leaves `current` naming exactly one complete slot:
 *
 *   1. stage   slot-X/agent.tmp written + fsynced, renamed to slot-X/agent (current untouched)
 *   2. record  STATE/software.json { state: "pending", from, to, deadlineAt } (temp + rename)
 *   3. flip    a fresh symlink renamed over `current`, directory fsynced
 *   4. probe   healthy → record "healthy"; else flip back (3) and record "rolled-back"
 *
 * A process killed between 3 and 4 leaves a "pending" record; `recover`
 * (run before every switch, and by `agent software-switch --recover`)
 * restores `from` once the deadline has passed.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname } from "node:path";
import { InstallError } from "../errors.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import { inRoot, LAYOUT } from "./layout.ts";

export type Slot = "slot-a" | "slot-b";
const SlotSchema = lazySchema(() => z.enum(["slot-a", "slot-b"]));

export const SoftwareRecordSchema = lazySchema(() =>
  z.strictObject({
    state: z.enum(["pending", "healthy", "rolled-back"]),
    from: SlotSchema,
    to: SlotSchema,
    sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
    startedAt: z.string(),
    deadlineAt: z.string(),
    finishedAt: z.optional(z.string()),
    ms: z.optional(z.number()),
    reason: z.optional(z.string()),
    /** Hashes of builds that failed their probe: never staged again. */
    bad: z._default(z.array(z.string()), []),
  }),
);
export type SoftwareRecord = z.infer<typeof SoftwareRecordSchema>;

export const softwareRecordPath = (root: string) => inRoot(root, `${LAYOUT.stateDir}/software.json`);

export function readRecord(root: string): SoftwareRecord | null {
  const file = softwareRecordPath(root);
  if (!existsSync(file)) return null;
  const r = SoftwareRecordSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!r.success)
    throw new InstallError("INST_SOFTWARE_RECORD", `${file}: ${r.error.issues[0]?.message}`, { file });
  return r.data;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeDurable(path: string, data: Uint8Array | string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode });
  fsyncPath(tmp);
  renameSync(tmp, path);
  fsyncPath(dirname(path));
}

export function currentSlot(root: string): Slot {
  const target = basename(readlinkSync(inRoot(root, LAYOUT.current)));
  const r = SlotSchema.safeParse(target);
  if (!r.success)
    throw new InstallError(
      "INST_SOFTWARE_SLOT",
      `${inRoot(root, LAYOUT.current)} points at ${target}, not a slot`,
    );
  return r.data;
}

const other = (s: Slot): Slot => (s === "slot-a" ? "slot-b" : "slot-a");

function flip(root: string, to: Slot): void {
  const link = inRoot(root, LAYOUT.current);
  const tmp = `${link}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(to, tmp);
  renameSync(tmp, link);
  fsyncPath(dirname(link));
}

function save(root: string, rec: SoftwareRecord): void {
  writeDurable(softwareRecordPath(root), `${JSON.stringify(rec, null, 2)}\n`, 0o644);
}

/** Restores `from` when a switch was interrupted and its deadline has passed. Returns the record if it acted. */
export function recover(root: string, now = new Date()): SoftwareRecord | null {
  const rec = readRecord(root);
  if (rec?.state !== "pending" || now < new Date(rec.deadlineAt)) return null;
  if (currentSlot(root) !== rec.from) flip(root, rec.from);
  const done: SoftwareRecord = {
    ...rec,
    state: "rolled-back",
    finishedAt: now.toISOString(),
    reason: "the switch was interrupted and its deadline passed; previous slot restored",
    bad: [...new Set([...rec.bad, rec.sha256])],
  };
  save(root, done);
  return done;
}

/** Healthy within the deadline, or why not. Must not leave processes behind. */
export type Probe = (signal: AbortSignal) => Promise<void>;

export interface SwitchOutcome {
  ok: boolean;
  from: Slot;
  to: Slot;
  sha256: string;
  /** Start of the switch to healthy (ok) or to the previous slot restored (not ok). */
  ms: number;
  reason?: string;
  record: SoftwareRecord;
}

export async function switchSoftware(
  root: string,
  binary: Uint8Array,
  opts: { deadlineMs: number; probe: Probe; now?: () => Date; afterRestore?: () => Promise<void> | void },
): Promise<SwitchOutcome> {
  const now = opts.now ?? (() => new Date());
  const t0 = performance.now();
  recover(root, now());
  const prev = readRecord(root);
  const sha256 = new Bun.CryptoHasher("sha256").update(binary).digest("hex");
  if (prev?.bad.includes(sha256)) {
    throw new InstallError(
      "INST_SOFTWARE_BAD",
      `build ${sha256.slice(0, 16)}… failed its health check before; not installed again`,
    );
  }
  const from = currentSlot(root);
  const to = other(from);
  writeDurable(inRoot(root, `${LAYOUT.optDir}/${to}/agent`), binary, 0o755);
  const startedAt = now();
  const pending: SoftwareRecord = {
    state: "pending",
    from,
    to,
    sha256,
    startedAt: startedAt.toISOString(),
    deadlineAt: new Date(startedAt.getTime() + opts.deadlineMs).toISOString(),
    bad: prev?.bad ?? [],
  };
  save(root, pending);
  flip(root, to);

  const ac = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let reason: string | undefined;
  const probing = opts.probe(ac.signal);
  // After the deadline the probe is abandoned (and its process killed); its late failure is not news.
  probing.catch(() => {});
  try {
    await Promise.race([
      probing,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no healthy answer within ${opts.deadlineMs} ms`)),
          opts.deadlineMs,
        );
      }),
    ]);
  } catch (e) {
    reason = (e as Error).message;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  if (reason === undefined) {
    const record: SoftwareRecord = {
      ...pending,
      state: "healthy",
      finishedAt: now().toISOString(),
      ms: Math.round(performance.now() - t0),
    };
    save(root, record);
    return { ok: true, from, to, sha256, ms: record.ms ?? 0, record };
  }
  flip(root, from);
  await opts.afterRestore?.();
  const record: SoftwareRecord = {
    ...pending,
    state: "rolled-back",
    finishedAt: now().toISOString(),
    reason,
    bad: [...new Set([...pending.bad, sha256])],
    ms: Math.round(performance.now() - t0),
  };
  save(root, record);
  return { ok: false, from, to, sha256, ms: record.ms ?? 0, reason, record };
}

/**
 * The probe without a live service manager: the executable now behind
 * `current` must start and answer `version --json` as an Outpost agent.
 * Killed on abort (deadline), so a binary that never answers leaves nothing running.
 */
export function versionProbe(root: string): Probe {
  return async (signal) => {
    const proc = Bun.spawn([inRoot(root, LAYOUT.binary), "version", "--json"], {
      // Bun.spawn without `env` passes the environment this process started with, which in a
      // re-executed supervisor holds this build's JavaScriptCore options; the new build may not
      // know them (core/jsc-reexec.ts). process.env is that environment with them removed.
      env: { ...process.env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const kill = () => proc.kill("SIGKILL");
    signal.addEventListener("abort", kill, { once: true });
    try {
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      if (code !== 0)
        throw new Error(`the new agent exited ${code}${proc.signalCode ? ` (${proc.signalCode})` : ""}`);
      let name: unknown;
      try {
        name = (JSON.parse(out) as { name?: unknown }).name;
      } catch {
        name = undefined;
      }
      if (name !== "outpost-agent")
        throw new Error("the new agent did not answer `version --json` as outpost-agent");
    } finally {
      signal.removeEventListener("abort", kill);
    }
  };
}
