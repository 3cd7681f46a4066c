/**
 * The control plane's edge, in front of Hono and the status fast path, for
 * what only the raw connection can tell (issue 12 items 6 and 17a):
 *
 *  E1 a request without a Host header (HTTP/1.0 allows it) is answered 400
 *     CTL_BAD_REQUEST: Bun cannot build a URL for it, and the admission check
 *     pins Host to loopback names, so it must never get further;
 *  E2 a connection from a host process (one the HostManager runs, or its
 *     descendant, core/host/peers.ts) is refused 403 CTL_PEER_REFUSED,
 *     whatever it presents: host processes run content, and content never
 *     acts on the agent except through its group's declared `agent`
 *     privilege over IPC.
 *     - unix socket: Bun does not hand out the connection's descriptor, so
 *       the guard asks the kernel for the peer pid (SO_PEERCRED) of each of
 *       its own sockets and, for a host peer, whether the socket is a
 *       control.sock connection (getsockname). A host peer's connection is shut
 *       down and the request refused. While a host process holds a
 *       connection, the request that finds it is refused even if it came
 *       from elsewhere — a retry succeeds, the host's connection is gone;
 *       host processes normally cannot even see the socket (state view,
 *       core/host/state-view.ts), so this is the second line.
 *     - TCP: the peer's port leads to its socket inode in /proc/net/tcp{,6},
 *       which is looked for among the host processes' descriptors.
 *
 * Both checks cost nothing while no host process runs.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Server } from "bun";
import { hostProcessTree, isHostProcess, trackedHostCount, trackedHostPids } from "../host/peers.ts";
import { ControlError, errorBody, httpStatusFor } from "./errors.ts";

type BunHandler = (req: Request, server: Server<undefined>) => Response | Promise<Response>;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SHUT_RDWR = 2;

interface SockLib {
  symbols: {
    getsockopt(fd: number, level: number, opt: number, val: unknown, len: unknown): number;
    getsockname(fd: number, addr: unknown, len: unknown): number;
    shutdown(fd: number, how: number): number;
  };
}

let lib: SockLib | null | undefined;
function sockLib(): SockLib | null {
  if (lib !== undefined) return lib;
  try {
    lib = dlopen("libc.so.6", {
      getsockopt: {
        args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
        returns: FFIType.i32,
      },
      shutdown: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    }) as unknown as SockLib;
  } catch {
    lib = null;
  }
  return lib;
}

/** This process's socket descriptors with their inodes. */
function ownSocketFds(): { fd: number; inode: string }[] {
  const out: { fd: number; inode: string }[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) out.push({ fd: Number(fd), inode: m[1]! });
  }
  return out;
}

/** The unix socket path `fd` is bound to (an accepted socket shares its listener's), or null. */
function unixName(l: SockLib, fd: number): string | null {
  const addr = new Uint8Array(110); // struct sockaddr_un: sa_family_t + sun_path[108]
  const len = new Uint32Array([addr.length]);
  if (l.symbols.getsockname(fd, ptr(addr), ptr(len)) !== 0) return null;
  if ((addr[0]! | (addr[1]! << 8)) !== 1 /* AF_UNIX */) return null;
  const path = addr.subarray(2, Math.min(len[0]!, addr.length));
  const end = path.indexOf(0);
  return new TextDecoder().decode(end < 0 ? path : path.subarray(0, end));
}

function peerPid(l: SockLib, fd: number): number | null {
  const cred = new Int32Array(3); // struct ucred { pid, uid, gid }
  const len = new Uint32Array([12]);
  return l.symbols.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ptr(cred), ptr(len)) === 0 ? cred[0]! : null;
}

/**
 * E2 for the unix socket: host peers connected right now, their
 * connections shut down. Returns their pids (empty: admit).
 */
export function refuseUnixHostPeers(socketPath: string): number[] {
  const l = sockLib();
  if (!l) return [];
  // Cheap first: the peer of each of our sockets (TCP ones have none); only a host peer is looked at
  // further.
  const suspects: { fd: number; inode: string; pid: number }[] = [];
  for (const s of ownSocketFds()) {
    const pid = peerPid(l, s.fd);
    if (pid !== null && pid > 0 && pid !== process.pid && isHostProcess(pid)) suspects.push({ ...s, pid });
  }
  if (suspects.length === 0) return [];
  const refused: number[] = [];
  for (const s of suspects) {
    // Not /proc/net/unix: a connection from another network namespace (every net: none host) is
    // accounted to the client's namespace and is not listed there; getsockname names it anyway.
    if (unixName(l, s.fd) !== socketPath) continue;
    l.symbols.shutdown(s.fd, SHUT_RDWR);
    refused.push(s.pid);
  }
  return refused;
}

/** The inode of the TCP socket bound to local port `port` and connected to remote port `serverPort`. */
export function tcpSocketInode(
  port: number,
  serverPort: number,
  tables = ["/proc/net/tcp", "/proc/net/tcp6"],
): string | null {
  for (const table of tables) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = Number.parseInt(f[1]!.split(":")[1]!, 16);
      const remote = Number.parseInt(f[2]!.split(":")[1]!, 16);
      if (local === port && remote === serverPort && f[9] !== "0") return f[9]!;
    }
  }
  return null;
}

/** Whether any host process shares this process's network namespace (else none can reach our TCP port). */
export function hostsShareNetns(): boolean {
  let own: string;
  try {
    own = readlinkSync("/proc/self/ns/net");
  } catch {
    return true;
  }
  for (const pid of trackedHostPids()) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === own) return true;
    } catch {
      // Gone, or not ours to inspect: it cannot be connected to us either way.
    }
  }
  return false;
}

/** E2 for TCP: the host pid owning the client end of this connection, or null. */
export function tcpHostPeer(peerPort: number, serverPort: number, family = "IPv4"): number | null {
  // `net: none` hosts live in an empty network namespace: the usual case costs a few readlinks.
  if (!hostsShareNetns()) return null;
  const inode = tcpSocketInode(peerPort, serverPort, [
    family === "IPv6" ? "/proc/net/tcp6" : "/proc/net/tcp",
  ]);
  if (!inode) return null;
  const needle = `socket:[${inode}]`;
  for (const pid of hostProcessTree()) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === needle) return pid;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return null;
}

function refusal(err: ControlError): Response {
  return Response.json(errorBody(err), { status: httpStatusFor(err.code) });
}

/**
 * Wraps a Bun handler with E1 and E2. `transport` says which listener it
 * serves: the unix socket's path, or "tcp".
 */
export function guardEdge(handler: BunHandler, transport: { unix: string } | "tcp"): BunHandler {
  return (req, server) => {
    if (!req.headers.get("host")) {
      return refusal(
        new ControlError("CTL_BAD_REQUEST", "request without a Host header (use HTTP/1.1, or send Host)"),
      );
    }
    if (trackedHostCount() > 0) {
      let pid: number | null = null;
      if (transport === "tcp") {
        const ip = server.requestIP(req);
        if (ip && server.port) pid = tcpHostPeer(ip.port, server.port, ip.family);
      } else {
        pid = refuseUnixHostPeers(transport.unix)[0] ?? null;
      }
      if (pid !== null) {
        return refusal(
          new ControlError(
            "CTL_PEER_REFUSED",
            `connection from host process ${pid} refused: content hosts may not use the control plane`,
          ),
        );
      }
    }
    return handler(req, server);
  };
}

/** The same guard over a routes table (Bun.serve `routes`). */
export function guardRoutes(
  routes: Record<string, BunHandler>,
  transport: { unix: string } | "tcp",
): Record<string, BunHandler> {
  return Object.fromEntries(Object.entries(routes).map(([k, h]) => [k, guardEdge(h, transport)]));
}
