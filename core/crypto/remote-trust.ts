/**
 * The trust store of a long-lived agent process, whose signature checks run
 * in a short-lived child process, `agent crypto-worker` (crypto-worker.ts),
 * not in the process itself (issue 21, Footprint).
 *
 * Why a process. The checks need the X.509 and CMS libraries (pkijs,
 * @peculiar/x509, asn1js, reflect-metadata). Once evaluated, a JavaScript
 * module stays for the life of the process, and these cost ~6 MiB of
 * anonymous memory (a compiled executable that loads them and verifies one
 * index: 5.8 MiB median of six against one that does not). The supervisor
 * needs them once an hour, for the seconds an update cycle takes; the child
 * exits `IDLE_MS` after its last answer and takes them with it. And the
 * bytes they parse — a repository's signature, a package's manifest — come
 * from the network: parsed in a child, a parser bug brings down the child,
 * whose death fails the check (`SIG_VERIFIER_FAILED`), not the supervisor.
 *
 * What crosses, one JSON line each way (bytes in base64): the PEM bundle,
 * the signed bytes and the signature go in; the verdict, or the error with
 * its code, message, file and details, comes back. The rules are verifyDetached's (cms-verify.ts, C1–C16), unchanged;
 * `verifySignature` (verify.ts) picks this or the in-process store.
 */
import { fileURLToPath } from "node:url";
import type { Subprocess } from "bun";
import { ConfigError, type OutpostError, SignatureError } from "../errors.ts";
import type { VerifiedSignature } from "./cms.ts";
import type { VerifyOptions } from "./cms-verify.ts";
import { readTrustPem } from "./trust-file.ts";

/** How long a worker with nothing to do stays: a cycle's checks come seconds apart at most. */
export const IDLE_MS = 2000;
/**
 * The longest one check may take. A real one takes ~50 ms; a signature crafted to make parsing or
 * path building spin would otherwise hold the update cycle for good. The worker is killed.
 */
export const CHECK_TIMEOUT_MS = 30_000;

/** What the worker tells about each root (for `expiringRoots`, trust-expiry.ts, and status). */
export interface RootSummary {
  subject: string;
  notAfter: Date;
  sha256: string;
}

export type WorkerRequest =
  | { op: "trust"; pem: string; source: string }
  | {
      op: "verify";
      pem: string;
      source: string;
      /** Base64: a manifest is ≤ 1 MiB, an index capped by config (1 MiB by default), a signature ≤ 256 KiB. */
      content: string;
      signature: string;
      now: number;
      file: string;
      requiredEku?: string;
    };

/** An error as it crosses: the class by name, so a SIG_* stays a SignatureError. */
export interface WireFailure {
  name: string;
  code: string;
  message: string;
  file?: string;
  details?: Record<string, unknown>;
}

export class RemoteTrust {
  private constructor(
    readonly source: string,
    private readonly pem: string,
    readonly roots: readonly RootSummary[],
    private readonly worker: CryptoWorkerClient,
  ) {}

  /** Reads the PEM bundle and has the worker parse it (CFG_TRUST_STORE naming the file, as TrustStore.load). */
  static async load(path: string, worker: CryptoWorkerClient = sharedCryptoWorker()): Promise<RemoteTrust> {
    const pem = await readTrustPem(path);
    const r = (await worker.request({ op: "trust", pem, source: path }, path)) as { roots?: unknown };
    if (!Array.isArray(r?.roots) || r.roots.length === 0 || !r.roots.every(isRoot)) throw malformed(path);
    const roots = r.roots.map((x) => ({
      subject: x.subject,
      notAfter: new Date(x.notAfter),
      sha256: x.sha256,
    }));
    return new RemoteTrust(path, pem, roots, worker);
  }

  async verify(content: Uint8Array, signature: Uint8Array, opts: VerifyOptions): Promise<VerifiedSignature> {
    const r = (await this.worker.request(
      {
        op: "verify",
        pem: this.pem,
        source: this.source,
        content: Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString("base64"),
        signature: Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString(
          "base64",
        ),
        now: opts.now.getTime(),
        file: opts.file,
        ...(opts.requiredEku ? { requiredEku: opts.requiredEku } : {}),
      },
      opts.file,
    )) as { signingTime?: unknown; signerSubject?: unknown; signerSha256?: unknown };
    if (
      typeof r?.signingTime !== "number" ||
      !Number.isFinite(r.signingTime) ||
      typeof r.signerSubject !== "string" ||
      typeof r.signerSha256 !== "string" ||
      !SHA256_HEX.test(r.signerSha256)
    )
      throw malformed(opts.file);
    return {
      signingTime: new Date(r.signingTime),
      signerSubject: r.signerSubject,
      signerSha256: r.signerSha256,
    };
  }

  /** SHA-256 fingerprints (hex) of the roots, as TrustStore.fingerprints. */
  fingerprints(): string[] {
    return this.roots.map((r) => r.sha256);
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A worker's answers are checked like any input: one that does not parse is not a verdict. */
function isRoot(x: unknown): x is { subject: string; notAfter: number; sha256: string } {
  const r = x as Record<string, unknown>;
  return (
    typeof r?.subject === "string" &&
    typeof r.notAfter === "number" &&
    Number.isFinite(r.notAfter) &&
    typeof r.sha256 === "string" &&
    SHA256_HEX.test(r.sha256)
  );
}

function malformed(file: string): SignatureError {
  return new SignatureError(
    "SIG_VERIFIER_FAILED",
    `${file}: signature not checked: the verifier process answered something that is not a verdict`,
    { file },
  );
}

/** `agent crypto-worker` from the compiled executable, `bun bin/agent.ts crypto-worker` from source. */
export function cryptoWorkerCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || import.meta.url.includes("/$bunfs/");
  if (compiled) return [process.execPath, "crypto-worker"];
  return [process.execPath, fileURLToPath(new URL("../../bin/agent.ts", import.meta.url)), "crypto-worker"];
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  file: string;
  timer: ReturnType<typeof setTimeout>;
}

/** One worker process and what it has been asked and not yet answered. */
interface Running {
  proc: Subprocess<"pipe", "pipe", "pipe">;
  pending: Map<number, Pending>;
  stderr: string;
}

/**
 * One worker process at a time, started by the first request and ended
 * `idleMs` after the last answer (stdin closed: it exits). A worker that
 * dies or breaks its framing fails what it was asked with
 * SIG_VERIFIER_FAILED; the next request starts a new one.
 */
export class CryptoWorkerClient {
  private current?: Running;
  private seq = 0;
  private idle?: ReturnType<typeof setTimeout>;
  /** Processes started, for tests. */
  started = 0;

  constructor(
    private readonly command: () => string[] = cryptoWorkerCommand,
    private readonly idleMs = IDLE_MS,
    private readonly timeoutMs = CHECK_TIMEOUT_MS,
  ) {}

  get running(): boolean {
    return this.current !== undefined;
  }

  /** The running worker's pid, if one runs. */
  get pid(): number | undefined {
    return this.current?.proc.pid;
  }

  request(req: WorkerRequest, file: string): Promise<unknown> {
    this.stopIdle();
    let w: Running;
    try {
      w = this.current ?? this.start();
    } catch (e) {
      return Promise.reject(
        new SignatureError(
          "SIG_VERIFIER_FAILED",
          `${file}: signature not checked: the verifier process could not be started (${(e as Error).message})`,
          { file },
        ),
      );
    }
    const id = ++this.seq;
    const done = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(w, `did not answer within ${this.timeoutMs} ms`),
        this.timeoutMs,
      );
      w.pending.set(id, { resolve, reject, file, timer });
    });
    try {
      w.proc.stdin.write(`${JSON.stringify({ id, ...req })}\n`);
      w.proc.stdin.flush();
    } catch (e) {
      this.fail(w, `could not be sent the request (${(e as Error).message})`);
    }
    return done;
  }

  /** Ends the worker now: it exits once its stdin closes. What it was still asked fails. */
  close(): void {
    this.stopIdle();
    const w = this.current;
    this.current = undefined;
    if (!w) return;
    try {
      w.proc.stdin.end();
    } catch {
      // Already gone.
    }
  }

  private stopIdle(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
  }

  private start(): Running {
    const proc = Bun.spawn(this.command(), {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      env: workerEnv(),
    });
    const w: Running = { proc, pending: new Map(), stderr: "" };
    // What it said before it died goes into the error: the last KiB is plenty for a runtime's abort.
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr)
        w.stderr = (w.stderr + decoder.decode(chunk, { stream: true })).slice(-1024);
    })().catch(() => {});
    this.current = w;
    this.started++;
    void (async () => {
      try {
        for await (const line of jsonLines(proc.stdout)) {
          let m: { id: number; ok?: unknown; error?: WireFailure };
          try {
            m = JSON.parse(line);
          } catch {
            this.fail(w, "answered with a line that is not JSON");
            return;
          }
          this.answer(w, m);
        }
      } catch {
        // The exit below reports it.
      }
      const code = await proc.exited;
      // A runtime's crash report ends in a URL; the line that says what happened is above it.
      const said = w.stderr
        .trim()
        .split("\n")
        .filter((l) => l.trim())
        .slice(-3)
        .join(" / ");
      this.fail(w, `exited (${proc.signalCode ?? `code ${code}`})${said ? `: ${said}` : ""}`);
    })();
    return w;
  }

  private answer(w: Running, m: { id: number; ok?: unknown; error?: WireFailure }): void {
    const p = w.pending.get(m.id);
    if (!p) return;
    w.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error) p.reject(fromWire(m.error));
    else p.resolve(m.ok);
    if (w.pending.size === 0 && this.current === w) {
      this.idle = setTimeout(() => this.close(), this.idleMs);
      this.idle.unref?.();
    }
  }

  /** Fails every pending request of `w` and forgets the worker. */
  private fail(w: Running, why: string): void {
    if (this.current === w) {
      this.current = undefined;
      this.stopIdle();
      w.proc.kill("SIGKILL");
    }
    for (const [id, p] of w.pending) {
      w.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(
        new SignatureError(
          "SIG_VERIFIER_FAILED",
          `${p.file}: signature not checked: the verifier process ${why}`,
          {
            file: p.file,
          },
        ),
      );
    }
  }
}

const CLASSES: Record<
  string,
  new (
    code: string,
    message: string,
    opts?: ConstructorParameters<typeof OutpostError>[2],
  ) => OutpostError
> = {
  SignatureError,
  ConfigError,
};

function fromWire(w: WireFailure): OutpostError {
  const Class = CLASSES[w.name] ?? SignatureError;
  return new Class(w.code, w.message, {
    ...(w.file ? { file: w.file } : {}),
    ...(w.details ? { details: w.details } : {}),
  });
}

/**
 * Nothing of this process's environment but where it may write: the supervisor's may hold
 * secrets. A host's TMPDIR is its work directory, the one place its sandbox lets it write; from
 * source, bun would otherwise try to cache transpiled files under $HOME.
 */
function workerEnv(): Record<string, string> {
  const tmp = process.env.TMPDIR ?? "/tmp";
  return {
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    HOME: tmp,
    TMPDIR: tmp,
    BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0",
    OUTPOST_LOG_QUIET: "1",
  };
}

/** The lines of a byte stream (one JSON message each, both directions). */
export async function* jsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
    }
  }
  if (buffered.length > 0) yield buffered;
}

let shared: CryptoWorkerClient | undefined;

/** The process's one worker client: every RemoteTrust of a process shares the worker. */
export function sharedCryptoWorker(): CryptoWorkerClient {
  shared ??= new CryptoWorkerClient();
  return shared;
}
