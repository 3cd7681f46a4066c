/**
 * A bounded flow table: which endpoint started a flow (so a packet is
 * to_server or to_client) and whether it is established. Both directions of
 * the configured ports are queued (core/sensors/nfqueue/rules.ts), so the
 * table sees handshakes and replies.
 *
 *   TCP  client = sender of the SYN (or receiver of the SYN-ACK); established
 *        once the client ACKs after the SYN-ACK. A flow first seen mid-stream
 *        (agent started after the handshake) counts as established.
 *   UDP  client = sender of the first packet seen; established once both
 *        directions have been seen.
 *
 * At most `maxFlows` entries: the least recently started flow is evicted,
 * so a SYN flood costs a fixed amount of memory (evictions are counted).
 */
import { type Decoded, PROTO_TCP, TCP_ACK, TCP_SYN } from "./packet.ts";

interface Flow {
  /** True when endpoint A (the lexicographically smaller one) is the client. */
  clientIsA: boolean;
  synAck: boolean;
  established: boolean;
  seenA: boolean;
  seenB: boolean;
}

export interface FlowInfo {
  toServer: boolean;
  established: boolean;
}

function compare(a: Uint8Array, ap: number, b: Uint8Array, bp: number): number {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return ap - bp;
}

const word = (x: Uint8Array, i: number) =>
  ((x[i]! << 24) | (x[i + 1]! << 16) | (x[i + 2]! << 8) | x[i + 3]!) >>> 0;

/** Canonical flow key; IPv4-mapped addresses (the common case) need only their last word. */
function keyOf(proto: number, a: Uint8Array, ap: number, b: Uint8Array, bp: number): string {
  const mapped = (x: Uint8Array) => word(x, 0) === 0 && word(x, 4) === 0 && word(x, 8) === 0xffff;
  const v4 = mapped(a) && mapped(b);
  if (v4) return `${proto}|${word(a, 12)}|${ap}|${word(b, 12)}|${bp}`;
  return `${proto}|${word(a, 0)},${word(a, 4)},${word(a, 8)},${word(a, 12)}|${ap}|${word(b, 0)},${word(b, 4)},${word(b, 8)},${word(b, 12)}|${bp}`;
}

export class FlowTable {
  private readonly flows = new Map<string, Flow>();
  evictions = 0;

  constructor(readonly maxFlows = 65_536) {}

  get size(): number {
    return this.flows.size;
  }

  /** Updates the flow of `d` and says where this packet goes. */
  track(d: Decoded): FlowInfo {
    const fromA = compare(d.src, d.sport, d.dst, d.dport) <= 0;
    const key = fromA
      ? keyOf(d.proto, d.src, d.sport, d.dst, d.dport)
      : keyOf(d.proto, d.dst, d.dport, d.src, d.sport);
    let f = this.flows.get(key);
    const tcp = d.proto === PROTO_TCP;
    const syn = tcp && (d.tcpFlags & TCP_SYN) !== 0;
    const ack = tcp && (d.tcpFlags & TCP_ACK) !== 0;
    if (!f) {
      if (this.flows.size >= this.maxFlows) {
        const oldest = this.flows.keys().next().value;
        if (oldest !== undefined) this.flows.delete(oldest);
        this.evictions++;
      }
      const senderIsClient = !(syn && ack);
      f = {
        clientIsA: senderIsClient ? fromA : !fromA,
        synAck: syn && ack,
        // Mid-stream pickup: a TCP flow first seen without SYN is already up.
        established: tcp && !syn,
        seenA: false,
        seenB: false,
      };
      this.flows.set(key, f);
    }
    if (fromA) f.seenA = true;
    else f.seenB = true;
    const fromClient = fromA === f.clientIsA;
    if (tcp) {
      if (syn && ack && !fromClient) f.synAck = true;
      else if (!syn && ack && fromClient && f.synAck) f.established = true;
    } else if (f.seenA && f.seenB) {
      f.established = true;
    }
    return { toServer: fromClient, established: f.established };
  }
}
