/**
 * NFQUEUE through bun:ffi and Debian's libnetfilter-queue1: the kernel hands
 * queued packets to this process, which answers each with accept or drop.
 *
 * Reading never blocks the event loop: the netlink socket is read with
 * `fs.read`, which runs the blocking recv(2) on the runtime's I/O thread
 * pool and calls back on the main thread. SO_RCVTIMEO bounds every read so
 * `close()` is noticed within READ_TIMEOUT_MS. Everything else — parsing the
 * netlink message (`nfq_handle_packet`, which calls our callback
 * synchronously) and sending verdicts — runs on the main thread, so the
 * library's handle is never touched by two threads at once.
 *
 * The queue is created with NFQA_CFG_F_FAIL_OPEN: when our backlog is full
 * the kernel accepts packets instead of dropping them, and the nft rule's
 * `bypass` flag accepts them when no reader is bound at all (agent stopped
 * or crashed). The IPS never becomes a network outage.
 */
import { dlopen, FFIType, JSCallback, ptr, read, toArrayBuffer } from "bun:ffi";
import { read as fsRead } from "node:fs";
import { IpsError } from "../../errors.ts";

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
const NFQNL_COPY_PACKET = 2;
const NFQA_CFG_F_FAIL_OPEN = 1;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_RCVBUFFORCE = 33;
const READ_TIMEOUT_MS = 200;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const ENOBUFS = 105;
/** Messages drained without blocking after each blocking read (one pool hop per burst, not per packet). */
const DRAIN_MAX = 1024;
const AF_INET = 2;
const AF_INET6 = 10;
/** One netlink message carries one packet: IP MTU-sized copies plus headers fit comfortably. */
const READ_BUFFER = 256 * 1024;

const LIB_CANDIDATES = ["libnetfilter_queue.so.1", "/usr/lib/x86_64-linux-gnu/libnetfilter_queue.so.1"];

function openLib() {
  const symbols = {
    nfq_open: { args: [], returns: FFIType.ptr },
    nfq_close: { args: [FFIType.ptr], returns: FFIType.i32 },
    nfq_bind_pf: { args: [FFIType.ptr, FFIType.u16], returns: FFIType.i32 },
    nfq_create_queue: {
      args: [FFIType.ptr, FFIType.u16, FFIType.function, FFIType.ptr],
      returns: FFIType.ptr,
    },
    nfq_destroy_queue: { args: [FFIType.ptr], returns: FFIType.i32 },
    nfq_set_mode: { args: [FFIType.ptr, FFIType.u8, FFIType.u32], returns: FFIType.i32 },
    nfq_set_queue_maxlen: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    nfq_set_queue_flags: { args: [FFIType.ptr, FFIType.u32, FFIType.u32], returns: FFIType.i32 },
    nfq_fd: { args: [FFIType.ptr], returns: FFIType.i32 },
    nfq_handle_packet: { args: [FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    nfq_get_msg_packet_hdr: { args: [FFIType.ptr], returns: FFIType.ptr },
    nfq_get_payload: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    nfq_set_verdict: {
      args: [FFIType.ptr, FFIType.u32, FFIType.u32, FFIType.u32, FFIType.ptr],
      returns: FFIType.i32,
    },
  } as const;
  let last: unknown;
  for (const name of LIB_CANDIDATES) {
    try {
      return dlopen(name, symbols).symbols;
    } catch (e) {
      last = e;
    }
  }
  throw new IpsError(
    "IPS_QUEUE_UNAVAILABLE",
    `libnetfilter_queue.so.1 not found (apt-get install libnetfilter-queue1): ${(last as Error)?.message}`,
  );
}

function openLibc() {
  return dlopen("libc.so.6", {
    setsockopt: {
      args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i32,
    },
    __errno_location: { args: [], returns: FFIType.ptr },
    recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  }).symbols;
}

type Lib = ReturnType<typeof openLib>;
type Libc = ReturnType<typeof openLibc>;
let lib: Lib | undefined;
let libc: Libc | undefined;

/** One queued packet: the kernel's id (for the verdict) and the IP packet (copied). */
export interface QueuedPacket {
  id: number;
  /** Milliseconds (performance.now()) when the packet reached this process. */
  at: number;
  bytes: Uint8Array;
}

export interface QueueOptions {
  queue: number;
  /** Packets the kernel holds for us before failing open. */
  maxLen: number;
  /** Bytes of each packet copied to us (the rest is never inspected). */
  copyBytes: number;
  onPacket(p: QueuedPacket): void;
  /** A read error the reader survived (ENOBUFS = the socket overran: packets passed uninspected). */
  onError?(code: string, message: string): void;
}

export interface QueueCounters {
  received: number;
  accepted: number;
  dropped: number;
  /** ENOBUFS on read: the kernel could not deliver to our socket. */
  overruns: number;
  verdictErrors: number;
}

/** A bound NFQUEUE. Construct with `NfQueue.open`; `close()` unbinds (the kernel then bypasses). */
export class NfQueue {
  readonly counters: QueueCounters = { received: 0, accepted: 0, dropped: 0, overruns: 0, verdictErrors: 0 };
  private closed = false;
  private readonly buf = Buffer.alloc(READ_BUFFER);
  private readonly payloadPtr = new BigUint64Array(1);
  private reading = false;
  private readDone?: () => void;

  private constructor(
    private readonly lib: Lib,
    private readonly h: NonNullable<ReturnType<Lib["nfq_open"]>>,
    private readonly qh: NonNullable<ReturnType<Lib["nfq_create_queue"]>>,
    private readonly fd: number,
    private readonly cb: JSCallback,
    private readonly opts: QueueOptions,
  ) {}

  static open(opts: QueueOptions): NfQueue {
    lib ??= openLib();
    libc ??= openLibc();
    const l = lib;
    const h = l.nfq_open();
    if (!h)
      throw new IpsError("IPS_QUEUE_UNAVAILABLE", `nfq_open failed: ${errnoText()} (needs CAP_NET_ADMIN)`);
    // Kernels ≥ 3.8 ignore these; older ones need the family bound.
    l.nfq_bind_pf(h, AF_INET);
    l.nfq_bind_pf(h, AF_INET6);
    let self: NfQueue | undefined;
    const cb = new JSCallback(
      (_qh: unknown, _nfmsg: unknown, nfad: number) => {
        self?.deliver(nfad);
        return 0;
      },
      { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    );
    const qh = cb.ptr ? l.nfq_create_queue(h, opts.queue, cb.ptr, null) : null;
    if (!qh) {
      const why = errnoText();
      l.nfq_close(h);
      cb.close();
      throw new IpsError(
        "IPS_QUEUE_UNAVAILABLE",
        `cannot bind NFQUEUE ${opts.queue}: ${why} (another process owns it, or no CAP_NET_ADMIN)`,
      );
    }
    l.nfq_set_mode(qh, NFQNL_COPY_PACKET, opts.copyBytes);
    l.nfq_set_queue_maxlen(qh, opts.maxLen);
    if (l.nfq_set_queue_flags(qh, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN) < 0) {
      // Without fail-open a full queue drops traffic; refuse to run like that.
      l.nfq_destroy_queue(qh);
      l.nfq_close(h);
      cb.close();
      throw new IpsError("IPS_QUEUE_UNAVAILABLE", "kernel refused NFQA_CFG_F_FAIL_OPEN");
    }
    const fd = l.nfq_fd(h);
    const c = libc;
    const tv = new BigInt64Array([0n, BigInt(READ_TIMEOUT_MS * 1000)]);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, ptr(tv), 16);
    // A larger socket buffer absorbs bursts; overflow shows as ENOBUFS (counted) and fails open.
    const rcv = new Int32Array([8 * 1024 * 1024]);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, ptr(rcv), 4);
    self = new NfQueue(l, h, qh, fd, cb, opts);
    self.readLoop();
    return self;
  }

  /** Sends a verdict for one packet. Unknown or stale ids are ignored by the kernel. */
  verdict(id: number, v: typeof NF_ACCEPT | typeof NF_DROP): void {
    if (this.closed) return;
    if (this.lib.nfq_set_verdict(this.qh, id, v, 0, null) < 0) this.counters.verdictErrors++;
    else if (v === NF_ACCEPT) this.counters.accepted++;
    else this.counters.dropped++;
  }

  /** Unbinds the queue; packets still held by the kernel are accepted by fail-open/bypass. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reading) await new Promise<void>((r) => (this.readDone = r));
    this.lib.nfq_destroy_queue(this.qh);
    this.lib.nfq_close(this.h);
    this.cb.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private deliver(nfad: number): void {
    const hdr = this.lib.nfq_get_msg_packet_hdr(nfad as never);
    if (!hdr) return;
    // struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16 hw_protocol; __u8 hook; }
    const idBe = read.u32(hdr, 0);
    const id = ((idBe & 0xff) << 24) | ((idBe & 0xff00) << 8) | ((idBe >>> 8) & 0xff00) | (idBe >>> 24);
    const len = this.lib.nfq_get_payload(nfad as never, ptr(this.payloadPtr));
    this.counters.received++;
    let bytes: Uint8Array;
    if (len > 0) {
      const p = Number(this.payloadPtr[0]);
      bytes = new Uint8Array(toArrayBuffer(p as never, 0, len).slice(0));
    } else {
      bytes = new Uint8Array(0);
    }
    this.opts.onPacket({ id: id >>> 0, at: performance.now(), bytes });
  }

  private handle(n: number): void {
    try {
      this.lib.nfq_handle_packet(this.h, ptr(this.buf), n);
    } catch (e) {
      this.opts.onError?.("EPARSE", (e as Error).message);
    }
  }

  /**
   * Reads whatever else is already queued on the socket without blocking:
   * a burst costs one thread-pool hop instead of one per packet.
   */
  private drain(): void {
    const c = libc!;
    for (let i = 0; i < DRAIN_MAX && !this.closed; i++) {
      const n = Number(c.recv(this.fd, ptr(this.buf), this.buf.length, MSG_DONTWAIT));
      if (n > 0) {
        this.handle(n);
        continue;
      }
      const errno = read.i32(c.__errno_location()!, 0);
      if (n < 0 && errno === ENOBUFS) {
        this.counters.overruns++;
        continue;
      }
      if (n < 0 && errno !== EAGAIN) this.opts.onError?.(`errno ${errno}`, "recv failed");
      return;
    }
  }

  private readLoop(): void {
    if (this.closed) {
      this.reading = false;
      this.readDone?.();
      return;
    }
    this.reading = true;
    fsRead(this.fd, this.buf, 0, this.buf.length, null, (err, n) => {
      if (this.closed) {
        this.reading = false;
        this.readDone?.();
        return;
      }
      if (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "EIO";
        if (code === "ENOBUFS") this.counters.overruns++;
        if (code !== "EAGAIN" && code !== "EWOULDBLOCK" && code !== "EINTR")
          this.opts.onError?.(code, err.message);
      } else if (n > 0) {
        this.handle(n);
        this.drain();
      }
      this.readLoop();
    });
  }
}

function errnoText(): string {
  if (!libc) return "unknown error";
  const p = libc.__errno_location();
  if (!p) return "unknown error";
  const n = read.i32(p, 0);
  return `${String(libc.strerror(n))} (errno ${n})`;
}
