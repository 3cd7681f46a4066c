/**
 * The supervisor's one look at packet bytes: is this a pure TCP ACK (no
 * payload; no SYN, FIN or RST)? Such packets carry nothing a content rule can
 * match and no flow-state change the engine needs (the handshake's final ACK
 * is implied by the client's first data segment, flow.ts), so they are
 * accepted at once instead of costing an IPC round trip — about half of a
 * bulk transfer's packets. Header-only rules therefore do not see pure ACKs
 * (docs/ips.md, "What is matched"). Every read is bounds-checked; anything
 * unexpected (options, IPv6 extension headers, fragments) answers false and
 * goes the normal way, to the sandboxed engine.
 */
const TCP = 6;
const FLAGS_OF_INTEREST = 0x01 | 0x02 | 0x04; // FIN, SYN, RST

export function isPureAck(p: Uint8Array): boolean {
  if (p.length < 1) return false;
  const version = p[0]! >> 4;
  let l4: number;
  let end: number;
  if (version === 4) {
    if (p.length < 20 || p[9] !== TCP) return false;
    const ihl = (p[0]! & 0x0f) * 4;
    const total = (p[2]! << 8) | p[3]!;
    const fragment = ((p[6]! & 0x3f) << 8) | p[7]!; // MF flag or an offset
    if (ihl < 20 || fragment !== 0 || total > p.length || total < ihl) return false;
    l4 = ihl;
    end = total;
  } else if (version === 6) {
    if (p.length < 40 || p[6] !== TCP) return false;
    l4 = 40;
    end = 40 + ((p[4]! << 8) | p[5]!);
    if (end > p.length) return false;
  } else return false;
  if (end < l4 + 20) return false;
  const doff = (p[l4 + 12]! >> 4) * 4;
  const flags = p[l4 + 13]!;
  return doff >= 20 && l4 + doff === end && (flags & FLAGS_OF_INTEREST) === 0 && (flags & 0x10) !== 0;
}
