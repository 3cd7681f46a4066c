/**
 * Landlock (Linux ≥ 5.13) through bun:ffi: an unprivileged process
 * restricts itself, irrevocably, to the filesystem paths and TCP ports it
 * names. A host process calls `applyLandlock` after its code is loaded and
 * before it touches content, so even a handler running as root cannot read,
 * write or execute outside its group's declared paths, connect to ports it
 * did not declare, or signal processes outside its sandbox (the supervisor).
 *
 * Everything is feature-detected by ABI version: a right the kernel does
 * not know is neither handled nor granted, and no Landlock at all is
 * reported (not thrown) so the caller can degrade with a warning.
 */
import { FFIType, ptr, read } from "bun:ffi";
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { type Libc, lazyLibc } from "../libc-ffi.ts";

const SYS_CREATE_RULESET = 444;
const SYS_ADD_RULE = 445;
const SYS_RESTRICT_SELF = 446;
const PR_SET_NO_NEW_PRIVS = 38;
const CREATE_RULESET_VERSION = 1;
const RULE_PATH_BENEATH = 1;
const RULE_NET_PORT = 2;
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;

export const FS = {
  EXECUTE: 1 << 0,
  WRITE_FILE: 1 << 1,
  READ_FILE: 1 << 2,
  READ_DIR: 1 << 3,
  REMOVE_DIR: 1 << 4,
  REMOVE_FILE: 1 << 5,
  MAKE_CHAR: 1 << 6,
  MAKE_DIR: 1 << 7,
  MAKE_REG: 1 << 8,
  MAKE_SOCK: 1 << 9,
  MAKE_FIFO: 1 << 10,
  MAKE_BLOCK: 1 << 11,
  MAKE_SYM: 1 << 12,
  REFER: 1 << 13,
  TRUNCATE: 1 << 14,
  IOCTL_DEV: 1 << 15,
} as const;
const NET_BIND_TCP = 1;
const NET_CONNECT_TCP = 2;
const SCOPE_ABSTRACT_UNIX_SOCKET = 1;
const SCOPE_SIGNAL = 2;

/** Rights that apply to a file (the rest only make sense on a directory). */
const FILE_RIGHTS = FS.EXECUTE | FS.WRITE_FILE | FS.READ_FILE | FS.TRUNCATE | FS.IOCTL_DEV;

function handledFs(abi: number): number {
  let all = (1 << 13) - 1;
  if (abi >= 2) all |= FS.REFER;
  if (abi >= 3) all |= FS.TRUNCATE;
  if (abi >= 5) all |= FS.IOCTL_DEV;
  return all;
}

export const READ = FS.READ_FILE | FS.READ_DIR;
export const READ_EXEC = READ | FS.EXECUTE;
export const READ_WRITE =
  READ |
  FS.WRITE_FILE |
  FS.REMOVE_DIR |
  FS.REMOVE_FILE |
  FS.MAKE_DIR |
  FS.MAKE_REG |
  FS.MAKE_SYM |
  FS.MAKE_SOCK |
  FS.MAKE_FIFO |
  FS.REFER |
  FS.TRUNCATE;

export interface LandlockRule {
  path: string;
  access: number;
}

export interface LandlockRequest {
  rules: LandlockRule[];
  /** TCP ports connect() may reach; every other connect and every bind is refused (ABI ≥ 4). */
  connectPorts: number[];
}

export interface LandlockResult {
  abi: number;
  fs: boolean;
  net: boolean;
  scoped: boolean;
  /** Rule paths that do not exist here and were left out. */
  missing: string[];
  error?: string;
  /**
   * Threads that existed before the restriction and may do I/O for JavaScript (Bun's thread pool,
   * a worker): Landlock never reaches them (see threadsBeforeSandbox). Set only when there are any.
   * The compiled agent refuses to run so (child.ts, the crypto worker); from source, Bun's module
   * loader has always started them, and status names them.
   */
  unrestrictedThreads?: string[];
}

/**
 * Threads of the JavaScript engine and the allocator: compilers, collectors and the allocator's
 * scavenger. They run no I/O for JavaScript code, so they may predate the sandbox. Linux keeps 15
 * bytes of a thread's name, and WebKit keeps the end of a long one ("…ollector Thread").
 */
const ENGINE_THREAD = /^(JITWorker|HeapHelper|JSCWarmUp|mi-scavenger|ollector Thread|t Helper Thread)$/;

/**
 * The other threads of this process, now, that are not the engine's (their names): what a Landlock
 * domain made by this thread would not cover. landlock_restrict_self() restricts the calling thread
 * and the threads and processes it starts afterwards, never a thread that already runs — and this
 * kernel has no flag to apply it to all of them (Landlock ABI 7). Bun starts its thread pool on the
 * first asynchronous file operation, and those threads are the ones that open files for
 * `Bun.file().text()` or `fs.promises`: one started before the sandbox keeps the whole file system
 * for the life of the process (an asynchronous read of /etc/hostname after the restriction succeeded
 * in every one of 32 tries). Bun's other threads start lazily, so a process that did no asynchronous
 * I/O before its restriction has none.
 */
export function threadsBeforeSandbox(): string[] {
  const self = readlinkSync("/proc/thread-self").split("/").pop();
  const processName = readFileSync("/proc/thread-self/comm", "utf8").trim();
  // A thread carries the process's name until it names itself: the JIT's worker does so a few
  // milliseconds after the engine starts it. Wait for that (at most UNNAMED_WAIT_MS); one still
  // unnamed after is listed, since nothing says what it is.
  const deadline = performance.now() + UNNAMED_WAIT_MS;
  for (;;) {
    const others: { tid: string; name: string }[] = [];
    for (const tid of readdirSync("/proc/self/task")) {
      if (tid === self) continue;
      try {
        others.push({ tid, name: readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim() });
      } catch {
        // Ended meanwhile.
      }
    }
    if (others.some((t) => t.name === processName) && performance.now() < deadline) {
      Bun.sleepSync(2);
      continue;
    }
    return others.filter((t) => !ENGINE_THREAD.test(t.name)).map((t) => `${t.name} (${t.tid})`);
  }
}

/** How long threadsBeforeSandbox waits for a thread still named like the process to name itself. */
const UNNAMED_WAIT_MS = 200;

const i64 = FFIType.i64;
const loadLibc = lazyLibc({
  syscall: { args: [i64, i64, i64, i64, i64], returns: i64 },
  prctl: {
    args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64],
    returns: FFIType.i32,
  },
  __errno_location: { args: [], returns: FFIType.ptr },
  dup: { args: [FFIType.i32], returns: FFIType.i32 },
  dup2: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
});

function errno(l: Libc): number {
  return read.i32(l.symbols.__errno_location!(), 0);
}

const pointer = (bytes: Uint8Array): number => ptr(bytes);

/** The kernel's Landlock ABI version, or 0 when Landlock is unavailable (old kernel, disabled LSM, no libc). */
export function landlockAbi(): number {
  const l = loadLibc();
  if (!l) return 0;
  const v = Number(l.symbols.syscall!(SYS_CREATE_RULESET, 0, 0, CREATE_RULESET_VERSION, 0));
  return Math.max(v, 0);
}

/** dup/dup2 from libc, for moving the IPC channel off fd 1 (see child.ts). */
export function dupFd(fd: number): number {
  const l = loadLibc();
  if (!l) return -1;
  return l.symbols.dup!(fd);
}

export function dup2Fd(from: number, to: number): number {
  const l = loadLibc();
  if (!l) return -1;
  return l.symbols.dup2!(from, to);
}

/** Sets PR_SET_NO_NEW_PRIVS: no exec can ever grant this process (or its children) more privileges. */
export function setNoNewPrivs(): boolean {
  const l = loadLibc();
  return !!l && l.symbols.prctl!(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) === 0;
}

/**
 * Restricts the calling thread, and every thread and process it starts
 * afterwards, to `req`. Irreversible. Threads that already run are not
 * restricted: any besides the engine's are listed in `unrestrictedThreads`
 * (threadsBeforeSandbox). Never throws: the result says which layers are in
 * force, and `error` why one is not.
 */
export function applyLandlock(req: LandlockRequest): LandlockResult {
  const result: LandlockResult = { abi: 0, fs: false, net: false, scoped: false, missing: [] };
  const l = loadLibc();
  if (!l) return { ...result, error: "libc.so.6 could not be loaded through bun:ffi" };
  const abi = landlockAbi();
  result.abi = abi;
  if (abi === 0) return { ...result, error: "the kernel does not offer Landlock (ABI 0)" };
  const fsAccess = handledFs(abi);
  const attr = new Uint8Array(24);
  const adv = new DataView(attr.buffer);
  adv.setBigUint64(0, BigInt(fsAccess), true);
  let size = 8;
  if (abi >= 4) {
    adv.setBigUint64(8, BigInt(NET_BIND_TCP | NET_CONNECT_TCP), true);
    size = 16;
  }
  if (abi >= 6) {
    adv.setBigUint64(16, BigInt(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL), true);
    size = 24;
  }
  const rulesetFd = Number(l.symbols.syscall!(SYS_CREATE_RULESET, pointer(attr), size, 0, 0));
  if (rulesetFd < 0) return { ...result, error: `landlock_create_ruleset failed (errno ${errno(l)})` };
  try {
    const rule = new Uint8Array(16);
    const rdv = new DataView(rule.buffer);
    for (const r of req.rules) {
      let fd: number;
      try {
        fd = openSync(r.path, O_PATH | O_CLOEXEC);
      } catch {
        result.missing.push(r.path);
        continue;
      }
      try {
        const isDir = fstatSync(fd).isDirectory();
        const access = (isDir ? r.access : r.access & FILE_RIGHTS) & fsAccess;
        if (access === 0) continue;
        rdv.setBigUint64(0, BigInt(access), true);
        rdv.setInt32(8, fd, true);
        const rc = Number(
          l.symbols.syscall!(SYS_ADD_RULE, rulesetFd, RULE_PATH_BENEATH, pointer(rule), 0, 0),
        );
        if (rc !== 0) return { ...result, error: `landlock_add_rule ${r.path} failed (errno ${errno(l)})` };
      } finally {
        closeSync(fd);
      }
    }
    if (abi >= 4) {
      for (const port of req.connectPorts) {
        rdv.setBigUint64(0, BigInt(NET_CONNECT_TCP), true);
        rdv.setBigUint64(8, BigInt(port), true);
        const rc = Number(l.symbols.syscall!(SYS_ADD_RULE, rulesetFd, RULE_NET_PORT, pointer(rule), 0, 0));
        if (rc !== 0)
          return { ...result, error: `landlock_add_rule port ${port} failed (errno ${errno(l)})` };
      }
    }
    if (!setNoNewPrivs())
      return { ...result, error: `prctl(PR_SET_NO_NEW_PRIVS) failed (errno ${errno(l)})` };
    // Listed before the restriction, since a host allowed no file system may not read /proc after
    // it. Between the listing and the syscall only synchronous code runs: no asynchronous I/O can
    // start Bun's pool there, and a thread the engine starts in that window is an engine thread.
    let early: string[];
    try {
      early = threadsBeforeSandbox();
    } catch (e) {
      // No /proc to tell: counted as a thread that may not be covered (a compiled host refuses).
      early = [`threads unknown (${(e as Error).message})`];
    }
    const rc = Number(l.symbols.syscall!(SYS_RESTRICT_SELF, rulesetFd, 0, 0, 0, 0));
    if (rc !== 0) return { ...result, error: `landlock_restrict_self failed (errno ${errno(l)})` };
    return {
      ...result,
      fs: true,
      net: abi >= 4,
      scoped: abi >= 6,
      ...(early.length > 0 ? { unrestrictedThreads: early } : {}),
    };
  } finally {
    closeSync(rulesetFd);
  }
}
