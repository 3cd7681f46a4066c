/**
 * Pure encoders/decoders for nfnetlink_log (linux/netfilter/nfnetlink_log.h),
 * the source of network.connect events (network.ts). No I/O: each layout
 * rule is tested with crafted bytes (nflog-parse.test.ts).
 *
 *   config:  nlmsghdr | nfgenmsg{family, version, res_id=group (BE)} | attrs
 *   packet:  nlmsghdr{type = NFNL_SUBSYS_ULOG<<8 | NFULNL_MSG_PACKET} | nfgenmsg | attrs
 *
 * Netfilter attributes carry their values in network byte order.
 */

const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLMSG_ERROR = 2;

const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULA_CFG_TIMEOUT = 4;
const NFULA_CFG_QTHRESH = 5;
export const NFULNL_CFG_CMD = { BIND: 1, UNBIND: 2 } as const;
const NFULNL_COPY_PACKET = 2;

const NFULA_PAYLOAD = 9;
const NFULA_UID = 11;
const NFULA_GID = 14;
const NFULA_TIMESTAMP = 3;

const align4 = (n: number) => (n + 3) & ~3;

function attr(type: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(4 + value.length));
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 4 + value.length, true);
  dv.setUint16(2, type, true);
  out.set(value, 4);
  return out;
}

const be32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, false);
  return b;
};

/** One NFULNL_MSG_CONFIG request for `group`, asking for an ACK (errors come back as NLMSG_ERROR). */
export function nflogConfigMessage(group: number, attrs: Uint8Array[], seq: number, family = 0): Uint8Array {
  const body = attrs.reduce((n, a) => n + a.length, 0);
  const len = 16 + 4 + body;
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, len, true);
  dv.setUint16(4, (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG, true);
  dv.setUint16(6, NLM_F_REQUEST | NLM_F_ACK, true);
  dv.setUint32(8, seq, true);
  out[16] = family;
  out[17] = 0; // NFNETLINK_V0
  dv.setUint16(18, group, false);
  let off = 20;
  for (const a of attrs) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

export const nflogCmd = (command: number) => attr(NFULA_CFG_CMD, new Uint8Array([command]));

/** Copy the first `range` bytes of each packet (IP + TCP headers are all we read). */
export function nflogCopyMode(range: number): Uint8Array {
  const v = new Uint8Array(6);
  new DataView(v.buffer).setUint32(0, range, false);
  v[4] = NFULNL_COPY_PACKET;
  return attr(NFULA_CFG_MODE, v);
}

/**
 * Kernel-side batching: a message is sent when `qthresh` packets are queued
 * or `timeoutCs` hundredths of a second passed, so a burst costs one read.
 */
export const nflogBatch = (qthresh: number, timeoutCs: number) => [
  attr(NFULA_CFG_QTHRESH, be32(qthresh)),
  attr(NFULA_CFG_TIMEOUT, be32(timeoutCs)),
];

/** The errno of the ACK (NLMSG_ERROR) answering `seq` in a datagram: 0 = success, undefined = not found. */
export function netlinkAck(buf: Uint8Array, len: number, seq: number): number | undefined {
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  for (let off = 0; off + 16 <= len; ) {
    const msgLen = dv.getUint32(off, true);
    if (msgLen < 16 || off + msgLen > len) break;
    if (dv.getUint16(off + 4, true) === NLMSG_ERROR && msgLen >= 20 && dv.getUint32(off + 8, true) === seq)
      return Math.abs(dv.getInt32(off + 16, true));
    off += align4(msgLen);
  }
  return undefined;
}

export interface ConnectRecord {
  proto: "tcp" | "tcp6";
  local: string;
  lport: number;
  remote: string;
  rport: number;
  /** fsuid of the socket's owner; -1 when the packet had no local socket (never for our output rule). */
  uid: number;
  /** Kernel timestamp when present (ms since the epoch), else 0. */
  ts: number;
}

function ipv6Text(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  let host = groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
  const mapped = host.match(/^::ffff:([0-9a-f]+):([0-9a-f]+)$/);
  if (mapped) host = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return host;
}

/**
 * The TCP connection a logged packet opens: IPv4 or IPv6 header + TCP ports.
 * Anything else (a truncated copy, another protocol, IPv6 extension headers
 * before TCP) is skipped: the output rule only logs TCP SYNs.
 */
export function parseIpTcp(p: Uint8Array): Omit<ConnectRecord, "uid" | "ts"> | undefined {
  if (p.length < 20) return undefined;
  const version = p[0]! >> 4;
  if (version === 4) {
    const ihl = (p[0]! & 0x0f) * 4;
    if (ihl < 20 || p[9] !== 6 || p.length < ihl + 4) return undefined;
    return {
      proto: "tcp",
      local: `${p[12]}.${p[13]}.${p[14]}.${p[15]}`,
      remote: `${p[16]}.${p[17]}.${p[18]}.${p[19]}`,
      lport: (p[ihl]! << 8) | p[ihl + 1]!,
      rport: (p[ihl + 2]! << 8) | p[ihl + 3]!,
    };
  }
  if (version === 6) {
    if (p.length < 44 || p[6] !== 6) return undefined;
    return {
      proto: "tcp6",
      local: ipv6Text(p.subarray(8, 24)),
      remote: ipv6Text(p.subarray(24, 40)),
      lport: (p[40]! << 8) | p[41]!,
      rport: (p[42]! << 8) | p[43]!,
    };
  }
  return undefined;
}

/** Decodes one datagram of NFULNL_MSG_PACKET messages (a kernel batch) into connections. */
export function parseNflog(buf: Uint8Array, len: number): ConnectRecord[] {
  const out: ConnectRecord[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  for (let off = 0; off + 16 <= len; ) {
    const msgLen = dv.getUint32(off, true);
    if (msgLen < 16 || off + msgLen > len) break;
    if (dv.getUint16(off + 4, true) === ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) {
      let payload: Uint8Array | undefined;
      let uid = -1;
      let ts = 0;
      for (let a = off + 20; a + 4 <= off + msgLen; ) {
        const aLen = dv.getUint16(a, true);
        if (aLen < 4 || a + aLen > off + msgLen) break;
        const type = dv.getUint16(a + 2, true) & 0x3fff;
        if (type === NFULA_PAYLOAD) payload = buf.subarray(a + 4, a + aLen);
        else if (type === NFULA_UID && aLen >= 8) uid = dv.getUint32(a + 4, false);
        else if (type === NFULA_TIMESTAMP && aLen >= 20)
          ts =
            Number(dv.getBigUint64(a + 4, false)) * 1000 +
            Math.floor(Number(dv.getBigUint64(a + 12, false)) / 1000);
        else if (type === NFULA_GID) {
          // Not carried: Behavior's events name the user, not the group.
        }
        a += align4(aLen);
      }
      const conn = payload ? parseIpTcp(payload) : undefined;
      if (conn) out.push({ ...conn, uid, ts });
    }
    off += align4(msgLen);
  }
  return out;
}
