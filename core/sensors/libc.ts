/**
 * The libc calls the kernel sensors need, through bun:ffi (as
 * core/host/landlock.ts does for Landlock): netlink sockets for the process
 * connector, fanotify for file and exec events, poll + a pipe so a reader
 * thread blocked on a sensor fd can be woken to stop, and
 * name_to_handle_at so fanotify's file handles can be mapped back to the
 * directories we marked. Nothing here throws on a missing kernel feature:
 * callers get -errno and decide (the sensor layer turns it into a reason in
 * status).
 */
import { FFIType, ptr, read } from "bun:ffi";
import { lazyLibc } from "../libc-ffi.ts";

const { i32, u32, u64, i64, ptr: p } = FFIType;
const load = lazyLibc({
  socket: { args: [i32, i32, i32], returns: i32 },
  bind: { args: [i32, p, u32], returns: i32 },
  send: { args: [i32, p, u64, i32], returns: i64 },
  read: { args: [i32, p, u64], returns: i64 },
  write: { args: [i32, p, u64], returns: i64 },
  writev: { args: [i32, p, i32], returns: i64 },
  close: { args: [i32], returns: i32 },
  setsockopt: { args: [i32, i32, i32, p, u32], returns: i32 },
  poll: { args: [p, u64, i32], returns: i32 },
  pipe2: { args: [p, i32], returns: i32 },
  fanotify_init: { args: [u32, u32], returns: i32 },
  fanotify_mark: { args: [i32, u32, u64, i32, p], returns: i32 },
  name_to_handle_at: { args: [i32, p, p, p, i32], returns: i32 },
  inotify_init1: { args: [i32], returns: i32 },
  inotify_add_watch: { args: [i32, p, u32], returns: i32 },
  __errno_location: { args: [], returns: p },
});

function sym(name: string) {
  const l = load();
  if (!l) throw new Error("libc.so.6 could not be loaded through bun:ffi");
  return l.symbols[name]!;
}

export function libcAvailable(): boolean {
  return load() !== null;
}

function errno(): number {
  return read.i32(sym("__errno_location")(), 0);
}

/** Returns rc, or -errno when the call failed. */
function rc(v: number | bigint): number {
  const n = Number(v);
  return n < 0 ? -errno() : n;
}

const cstr = (s: string): Uint8Array => new TextEncoder().encode(`${s}\0`);

export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_CONNECTOR = 11;
export const SOL_SOCKET = 1;
export const SO_RCVBUFFORCE = 33;
export const AT_FDCWD = -100;
export const EAGAIN = 11;
export const EINTR = 4;
export const ENOBUFS = 105;
export const EPERM = 1;

export function socket(domain: number, type: number, protocol: number): number {
  return rc(sym("socket")(domain, type, protocol));
}

export function bind(fd: number, addr: Uint8Array): number {
  return rc(sym("bind")(fd, ptr(addr), addr.length));
}

export function send(fd: number, data: Uint8Array): number {
  return rc(sym("send")(fd, ptr(data), data.length, 0));
}

export function readFd(fd: number, buf: Uint8Array): number {
  return rc(sym("read")(fd, ptr(buf), buf.length));
}

export function writeFd(fd: number, data: Uint8Array): number {
  return rc(sym("write")(fd, ptr(data), data.length));
}

/**
 * Answers ALLOW to many fanotify permission events in one writev(): the kernel takes one response per
 * write (fanotify_write has no write_iter, so writev loops over the iovecs), one syscall for all.
 * Returns the number answered, or -errno.
 */
export function fanotifyAllowMany(fanFd: number, eventFds: number[]): number {
  if (eventFds.length === 1) return rcAnswered(writeFd(fanFd, fanAllow(eventFds[0]!)));
  let answered = 0;
  for (let from = 0; from < eventFds.length; from += IOV_MAX) {
    const n = Math.min(IOV_MAX, eventFds.length - from);
    // Fresh arrays and pointers on every call: a pointer kept across calls may outlive the storage
    // it was taken from (the engine can move a typed array's contents), and the kernel would then
    // answer whatever stale fd it finds there — another event's — leaving this one held.
    const responses = new Int32Array(2 * n);
    const iov = new BigUint64Array(2 * n);
    const base = BigInt(ptr(responses));
    for (let i = 0; i < n; i++) {
      responses[2 * i] = eventFds[from + i]!;
      responses[2 * i + 1] = 1; // FAN_ALLOW
      iov[2 * i] = base + BigInt(8 * i);
      iov[2 * i + 1] = 8n;
    }
    const r = rc(sym("writev")(fanFd, ptr(iov), n));
    if (r < 0) return answered > 0 ? answered : r;
    answered += r / 8;
    if (r < 8 * n) return answered;
  }
  return answered;
}

const IOV_MAX = 1024;
const rcAnswered = (r: number) => (r < 0 ? r : r / 8);
function fanAllow(fd: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, fd, true);
  dv.setUint32(4, 1, true); // FAN_ALLOW
  return b;
}

export function closeFd(fd: number): number {
  return rc(sym("close")(fd));
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): number {
  const v = new Int32Array([value]);
  return rc(sym("setsockopt")(fd, level, name, ptr(v), 4));
}

export const POLLIN = 1;
/** What /proc/self/mountinfo reports once per change of the mount table. */
export const POLLPRI = 2;

/** Blocks until one of `fds` is readable (or timeoutMs, -1 = forever); returns the readable ones. */
export function pollIn(fds: number[], timeoutMs: number): number[] | number {
  const revents = pollEvents(
    fds,
    fds.map(() => POLLIN),
    timeoutMs,
  );
  if (typeof revents === "number") return revents;
  // POLLIN, POLLERR, POLLHUP, POLLNVAL all mean "read now, it will not block".
  return fds.filter((_, i) => revents[i] !== 0);
}

/**
 * poll() on `fds`, each with its `events` (a negative fd or 0 events: skipped, revents 0), for at most
 * `timeoutMs` (-1 = forever). Returns each fd's revents, or -errno.
 */
export function pollEvents(fds: number[], events: number[], timeoutMs: number): number[] | number {
  const arr = new Uint8Array(8 * fds.length);
  const dv = new DataView(arr.buffer);
  fds.forEach((fd, i) => {
    dv.setInt32(i * 8, events[i] ? fd : -1, true);
    dv.setInt16(i * 8 + 4, events[i] ?? 0, true);
  });
  const n = rc(sym("poll")(ptr(arr), fds.length, timeoutMs));
  if (n < 0) return n;
  return fds.map((_, i) => dv.getUint16(i * 8 + 6, true));
}

export function pipe(): [number, number] | number {
  const fds = new Int32Array(2);
  const r = rc(sym("pipe2")(ptr(fds), 0o2000000 /* O_CLOEXEC */));
  return r < 0 ? r : [fds[0]!, fds[1]!];
}

export function fanotifyInit(flags: number, eventFlags: number): number {
  return rc(sym("fanotify_init")(flags >>> 0, eventFlags >>> 0));
}

export function fanotifyMark(fd: number, flags: number, mask: number, path: string): number {
  return rc(sym("fanotify_mark")(fd, flags >>> 0, mask, AT_FDCWD, ptr(cstr(path))));
}

/**
 * fanotify_mark on the inode `fd` refers to (pathname NULL: dirfd names the object), or — with
 * FAN_MARK_FLUSH — on no object at all.
 */
export function fanotifyMarkFd(group: number, flags: number, mask: number, fd: number): number {
  return rc(sym("fanotify_mark")(group, flags >>> 0, mask, fd, null));
}

/** The kernel's file handle for `path` as "type:hex", the key fanotify FID events carry. */
export function fileHandleKey(path: string): string | number {
  const MAX_HANDLE_SZ = 128;
  const h = new Uint8Array(8 + MAX_HANDLE_SZ);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, MAX_HANDLE_SZ, true);
  const mountId = new Int32Array(1);
  const r = rc(sym("name_to_handle_at")(AT_FDCWD, ptr(cstr(path)), ptr(h), ptr(mountId), 0));
  if (r < 0) return r;
  const bytes = dv.getUint32(0, true);
  return handleKey(dv.getInt32(4, true), h.subarray(8, 8 + bytes));
}

export function handleKey(type: number, bytes: Uint8Array): string {
  return `${type}:${Buffer.from(bytes).toString("hex")}`;
}

export function inotifyInit(): number {
  return rc(sym("inotify_init1")(0o2000000 /* IN_CLOEXEC */));
}

export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return rc(sym("inotify_add_watch")(fd, ptr(cstr(path)), mask >>> 0));
}
