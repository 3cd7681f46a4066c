/**
 * Bringing content into a host process (the request path of
 * manager.ts): stage a version file by file and have the host validate it,
 * prepare + commit it, and after a restart reload what is current for each
 * handler (S1) — rolling back through `onContentFailure` when content that
 * was live no longer loads (S4).
 */
import { describeError } from "../errors.ts";
import type { ContentView } from "../handler/contract.ts";
import { headBytesFor } from "./head-only.ts";
import { stagedBytes } from "./host-metrics.ts";
import { requestHost } from "./host-request.ts";
import type { IdleGc } from "./idle-gc.ts";
import type { HostProcess } from "./process.ts";
import { CommitResult, PrepareResult, parseWire } from "./protocol.ts";
import type { GroupRec, HostManagerOptions, TypeSlot } from "./records.ts";
import type { Lease, SharedTransfer } from "./shared-transfer.ts";

/**
 * Staged files up to this size go through the group's transfer region (shared-transfer.ts) rather
 * than down its pipe: the bytes are copied once into the region instead of into a frame, through the
 * pipe and out of it again (`agent scan` offline stages a 2.2 MB DatasetA at each run). The cap is the
 * scan chunk the region already serves, so staging touches no more of its pages than scanning does.
 */
export const STAGE_VIA_TRANSFER_MAX = 8 * 1024 * 1024;

/** One payload file as staged: its bytes, or a headOnly file's head and its whole size. */
export interface StagedFile {
  data: Uint8Array;
  size?: number;
}

/**
 * How much of a payload HostManager.validate reads ahead while the host it goes to starts: the
 * transfer region's chunk, so a small payload (DatasetA's 2.2 MB at every `agent scan` offline) is
 * read while the scanner boots, and a large one costs no more memory than before.
 */
export const READ_AHEAD_MAX = STAGE_VIA_TRANSFER_MAX;

export class ContentLoader {
  constructor(
    private readonly o: {
      opts: HostManagerOptions;
      slots: Map<string, TypeSlot>;
      /** Staging reads whole payload files into the supervisor's heap; they are garbage once sent. */
      gc: IdleGc;
      /** The transfer region of a group's running process, if it has one. */
      transfer?: (group: string) => SharedTransfer | undefined;
    },
  ) {}

  /** S1: brings a fresh process to the content that is current for each of its handlers. */
  async reload(g: GroupRec, proc: HostProcess): Promise<void> {
    for (const type of g.types) {
      if (this.o.slots.get(type)!.desired) await this.loadDesired(g, proc, type);
    }
  }

  /** Loads the desired content of `type` into `proc`; S4 on a failure that is not a crash. */
  async loadDesired(g: GroupRec, proc: HostProcess, type: string): Promise<void> {
    const slot = this.o.slots.get(type)!;
    for (let attempt = 0; slot.desired && attempt < 2; attempt++) {
      const d = slot.desired;
      try {
        await this.loadInto(g, proc, type, d.view);
        slot.state = "loaded";
        slot.version = d.version;
        slot.error = undefined;
        return;
      } catch (e) {
        if (!proc.running || (e as { code?: string }).code === "HND_HOST_CRASHED") throw e;
        const err = describeError(e);
        this.o.opts.log.error("content that was live no longer loads", { group: g.name, type, ...err });
        let replacement: ContentView | null = null;
        try {
          replacement = await this.o.opts.onContentFailure({
            type,
            group: g.name,
            version: d.version,
            reason: "reload-failed",
            code: err.code,
            detail: err.message,
          });
        } catch (e2) {
          this.o.opts.log.error("rollback after a failed reload failed", { type, ...describeError(e2) });
        }
        if (replacement && replacement.version !== d.version) {
          slot.desired = { view: replacement, version: replacement.version, activatedAt: 0 };
        } else {
          slot.desired = undefined;
          slot.state = "failed";
          slot.version = null;
          slot.error = err;
        }
      }
    }
    if (slot.desired) {
      slot.desired = undefined;
      slot.state = "failed";
      slot.version = null;
    }
  }

  async loadInto(g: GroupRec, proc: HostProcess, type: string, view: ContentView): Promise<void> {
    await this.stage(g, proc, type, view, false);
    const timeoutMs = this.o.opts.config.loadTimeoutSeconds * 1000;
    const r = parseWire(
      PrepareResult,
      await requestHost(
        g,
        proc,
        "prepare",
        { type, version: view.version },
        {
          timeoutMs,
          what: `reload ${type} v${view.version}`,
          candidate: false,
        },
      ),
      "prepare",
    );
    g.staged.delete(type);
    const c = parseWire(
      CommitResult,
      await requestHost(
        g,
        proc,
        "commit",
        { preparedId: r.preparedId },
        {
          timeoutMs,
          what: `activate ${type} v${view.version}`,
          candidate: false,
        },
      ),
      "commit",
    );
    this.o.slots.get(type)!.status = c.status;
  }

  /**
   * The first files of `view`, up to READ_AHEAD_MAX bytes in all, read and checked now — while the
   * host process that is to get them still boots (HostManager.validate). Staging reads the rest
   * as it goes, one file at a time, as it always does: reading ahead never holds more than this
   * budget beyond what staging holds anyway.
   */
  readAhead(type: string, view: ContentView): Map<string, StagedFile> {
    const ahead = new Map<string, StagedFile>();
    let bytes = 0;
    for (const path of view.files) {
      bytes += Math.min(
        view.size(path),
        headBytesFor(this.manifestOf(type), path) ?? Number.POSITIVE_INFINITY,
      );
      if (bytes > READ_AHEAD_MAX) break;
      ahead.set(path, this.readFile(type, view, path));
    }
    return ahead;
  }

  /** A file as it is sent: whole, or a headOnly file's head and size (view.head checks the whole file, streaming it). */
  private readFile(type: string, view: ContentView, path: string): StagedFile {
    const headBytes = headBytesFor(this.manifestOf(type), path);
    return headBytes === undefined
      ? { data: view.read(path) }
      : { data: view.head(path, headBytes), size: view.size(path) };
  }

  private manifestOf(type: string) {
    return this.o.slots.get(type)!.manifest;
  }

  /**
   * Sends the payload file by file (no file crosses twice), then asks the host to validate it.
   * `ahead`: files `readAhead` already read and checked.
   */
  async stage(
    g: GroupRec,
    proc: HostProcess,
    type: string,
    view: ContentView,
    candidate: boolean,
    ahead?: Map<string, StagedFile>,
  ) {
    const timeoutMs = this.o.opts.config.loadTimeoutSeconds * 1000;
    const what = `${candidate ? "validate" : "reload"} ${type} v${view.version}`;
    g.staged.delete(type);
    for (const path of view.files) {
      const file = ahead?.get(path) ?? this.readFile(type, view, path);
      ahead?.delete(path);
      stagedBytes.inc({ group: g.name }, file.data.byteLength);
      // The bytes leased are the bytes the view checked: copied from them, into a region the host
      // can only read. The host copies them out before it answers (child.ts), so the lease ends here.
      const lease = this.leaseFor(g, file.data);
      try {
        await requestHost(
          g,
          proc,
          "stageFile",
          { type, version: view.version, path, ...file, ...(lease ? { data: lease.bytes } : {}) },
          {
            timeoutMs,
            what,
            candidate,
          },
        );
      } finally {
        lease?.release();
      }
    }
    await requestHost(
      g,
      proc,
      "validate",
      { type, version: view.version, signingTime: view.signingTime, files: [...view.files] },
      { timeoutMs, what, candidate },
    );
    if (g.proc === proc) g.staged.set(type, view.version);
    this.o.gc.soon();
  }

  /** `data` copied into a lease of the group's transfer region, or undefined to send it as it is. */
  private leaseFor(g: GroupRec, data: Uint8Array): Lease | undefined {
    if (data.byteLength === 0 || data.byteLength > STAGE_VIA_TRANSFER_MAX) return undefined;
    const lease = this.o.transfer?.(g.name)?.lease(data.byteLength);
    lease?.bytes.set(data);
    return lease;
  }
}
