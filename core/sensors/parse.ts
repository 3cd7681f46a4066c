/**
 * Pure decoders for what the kernel sensors read: process connector
 * messages (linux/cn_proc.h) and fanotify event records
 * (linux/fanotify.h). No I/O, so each layout rule is tested with crafted
 * bytes (parse.test.ts); the reader thread calls these on every read.
 */

/** Process connector: the netlink message that subscribes to proc events (PROC_CN_MCAST_LISTEN). */
export function connectorListenMessage(listen = true): Uint8Array {
  const buf = new Uint8Array(40);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, 40, true); // nlmsg_len
  dv.setUint16(4, 3, true); // NLMSG_DONE
  dv.setUint32(12, process.pid, true);
  dv.setUint32(16, 1, true); // cn_msg.id.idx = CN_IDX_PROC
  dv.setUint32(20, 1, true); // cn_msg.id.val = CN_VAL_PROC
  dv.setUint16(32, 4, true); // cn_msg.len
  dv.setUint32(36, listen ? 1 : 2, true); // PROC_CN_MCAST_LISTEN / IGNORE
  return buf;
}

/** sockaddr_nl bound to the proc connector's multicast group. */
export function connectorAddress(): Uint8Array {
  const a = new Uint8Array(12);
  const dv = new DataView(a.buffer);
  dv.setUint16(0, 16, true); // AF_NETLINK
  dv.setUint32(8, 1, true); // nl_groups = CN_IDX_PROC
  return a;
}

export const PROC_EVENT = { FORK: 0x1, EXEC: 0x2, EXIT: 0x80000000 } as const;

export type ConnectorRecord =
  | { what: "fork"; pid: number; ppid: number; ts: number }
  | { what: "exec"; pid: number; ts: number }
  | { what: "exit"; pid: number; ppid: number; code: number; ts: number };

/**
 * Decodes one datagram (one or more netlink messages). Threads are left out:
 * a fork whose child is not a thread-group leader is a new thread, not a
 * process, and so is an exit of a non-leader.
 */
export function parseConnector(buf: Uint8Array, len: number): ConnectorRecord[] {
  const out: ConnectorRecord[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  let off = 0;
  while (off + 16 <= len) {
    const msgLen = dv.getUint32(off, true);
    if (msgLen < 16 || off + msgLen > len) break;
    const type = dv.getUint16(off + 4, true);
    // nlmsghdr(16) + cn_msg(20) + proc_event{what, cpu, timestamp_ns}(16) + data
    const ev = off + 36;
    if (type === 3 /* NLMSG_DONE */ && msgLen >= 52 + 8) {
      const what = dv.getUint32(ev, true);
      const ts = Number(dv.getBigUint64(ev + 8, true) / 1000n);
      const d = ev + 16;
      if (what === PROC_EVENT.FORK && msgLen >= 52 + 16) {
        const ppid = dv.getUint32(d + 4, true);
        const pid = dv.getUint32(d + 8, true);
        const tgid = dv.getUint32(d + 12, true);
        if (pid === tgid) out.push({ what: "fork", pid, ppid, ts });
      } else if (what === PROC_EVENT.EXEC) {
        const pid = dv.getUint32(d, true);
        const tgid = dv.getUint32(d + 4, true);
        if (pid === tgid) out.push({ what: "exec", pid, ts });
      } else if (what === PROC_EVENT.EXIT && msgLen >= 52 + 24) {
        const pid = dv.getUint32(d, true);
        const tgid = dv.getUint32(d + 4, true);
        if (pid === tgid)
          out.push({
            what: "exit",
            pid,
            code: dv.getUint32(d + 8, true),
            ppid: dv.getUint32(d + 20, true),
            ts,
          });
      }
    }
    off += (msgLen + 3) & ~3;
  }
  return out;
}

export const FAN = {
  ACCESS: 0x1,
  MODIFY: 0x2,
  ATTRIB: 0x4,
  CLOSE_WRITE: 0x8,
  OPEN: 0x20,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  OPEN_EXEC: 0x1000,
  Q_OVERFLOW: 0x4000,
  OPEN_PERM: 0x10000,
  OPEN_EXEC_PERM: 0x40000,
  EVENT_ON_CHILD: 0x08000000,
  RENAME: 0x10000000,
  ONDIR: 0x40000000,
} as const;

export const FAN_PERM_MASK = FAN.OPEN_PERM | FAN.OPEN_EXEC_PERM | 0x20000; /* ACCESS_PERM */

export const FAN_INIT = {
  CLOEXEC: 0x1,
  NONBLOCK: 0x2,
  CLASS_NOTIF: 0x0,
  CLASS_CONTENT: 0x4,
  UNLIMITED_QUEUE: 0x10,
  UNLIMITED_MARKS: 0x20,
  REPORT_FID: 0x200,
  REPORT_DFID_NAME: 0xc00,
} as const;

export const FAN_MARK = {
  ADD: 0x1,
  REMOVE: 0x2,
  ONLYDIR: 0x8,
  MOUNT: 0x10,
  IGNORED_MASK: 0x20,
  IGNORED_SURV_MODIFY: 0x40,
  FLUSH: 0x80,
  FILESYSTEM: 0x100,
} as const;

/** Information record types after the metadata (FAN_EVENT_INFO_TYPE_*). */
const INFO = { FID: 1, DFID_NAME: 2, DFID: 3, OLD_DFID_NAME: 10, NEW_DFID_NAME: 12 } as const;

export interface FanRecord {
  mask: number;
  /** The open file (content and permission events); -1 in FID mode. */
  fd: number;
  pid: number;
  /** FID mode: the directory's handle key (libc.handleKey format) and the entry name. */
  dir?: string;
  name?: string;
  /** FAN_RENAME: the old directory + name ("dir"/"name" then hold the new ones). */
  oldDir?: string;
  oldName?: string;
  /** FAN_CLOSE_WRITE in block mode: the reader thread took an ignore mark of ours off this inode. */
  ignoreMarkRemoved?: boolean;
}

/** Decodes a read() of a fanotify fd (metadata version 3, optional FID info records). */
export function parseFanotify(buf: Uint8Array, len: number): FanRecord[] {
  const out: FanRecord[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  let off = 0;
  while (off + 24 <= len) {
    const eventLen = dv.getUint32(off, true);
    const metaLen = dv.getUint16(off + 6, true);
    if (eventLen < 24 || off + eventLen > len) break;
    const r: FanRecord = {
      mask: Number(dv.getBigUint64(off + 8, true)),
      fd: dv.getInt32(off + 16, true),
      pid: dv.getInt32(off + 20, true),
    };
    let info = off + metaLen;
    while (info + 4 <= off + eventLen) {
      const type = dv.getUint8(info);
      const infoLen = dv.getUint16(info + 2, true);
      if (infoLen < 4) break;
      if (
        type === INFO.DFID_NAME ||
        type === INFO.OLD_DFID_NAME ||
        type === INFO.NEW_DFID_NAME ||
        type === INFO.DFID ||
        type === INFO.FID
      ) {
        // header(4) + fsid(8) + file_handle{handle_bytes u32, handle_type i32, f_handle[]} + name\0
        const hb = dv.getUint32(info + 12, true);
        const ht = dv.getInt32(info + 16, true);
        const hStart = info + 20;
        const key = `${ht}:${Buffer.from(buf.subarray(hStart, hStart + hb)).toString("hex")}`;
        let name: string | undefined;
        if (type !== INFO.DFID && type !== INFO.FID) {
          const nStart = hStart + hb;
          let nEnd = nStart;
          while (nEnd < info + infoLen && buf[nEnd] !== 0) nEnd++;
          name = new TextDecoder().decode(buf.subarray(nStart, nEnd));
        }
        if (type === INFO.OLD_DFID_NAME) {
          r.oldDir = key;
          r.oldName = name;
        } else if (type !== INFO.FID) {
          r.dir = key;
          if (name !== undefined) r.name = name;
        }
      }
      info += infoLen;
    }
    out.push(r);
    off += eventLen;
  }
  return out;
}

/** fanotify_response {fd, response}: FAN_ALLOW (1) or FAN_DENY (2). */
export function fanResponse(fd: number, allow: boolean): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, fd, true);
  dv.setUint32(4, allow ? 1 : 2, true);
  return b;
}

export const IN = {
  ATTRIB: 0x4,
  CLOSE_WRITE: 0x8,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  Q_OVERFLOW: 0x4000,
  ISDIR: 0x40000000,
} as const;

export interface InotifyRecord {
  wd: number;
  mask: number;
  cookie: number;
  name: string;
}

/** Decodes a read() of an inotify fd: {wd, mask, cookie, len, name[len]} records. */
export function parseInotify(buf: Uint8Array, len: number): InotifyRecord[] {
  const out: InotifyRecord[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  let off = 0;
  while (off + 16 <= len) {
    const nameLen = dv.getUint32(off + 12, true);
    if (off + 16 + nameLen > len) break;
    let end = off + 16;
    while (end < off + 16 + nameLen && buf[end] !== 0) end++;
    out.push({
      wd: dv.getInt32(off, true),
      mask: dv.getUint32(off + 4, true),
      cookie: dv.getUint32(off + 8, true),
      name: new TextDecoder().decode(buf.subarray(off + 16, end)),
    });
    off += 16 + nameLen;
  }
  return out;
}
