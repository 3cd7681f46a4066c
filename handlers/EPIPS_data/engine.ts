/**
 * The ips host's engine: a batch of queued packets in, per-packet verdicts
 * and detections out. What is matched: each packet's L4 payload on its own
 * (no stream reassembly), with flow direction and state from the flow
 * table — a signature split across two TCP segments is not seen
 * (docs/ips.md, "What is matched").
 *
 * Wire format of a batch (one IPC call, one attachment):
 *   { data: Uint8Array (packets concatenated), lens: number[] }
 * Result:
 *   { drop: number[] (indices of packets a drop rule matched),
 *     detections: Detection[], malformed: number }
 */
import { FlowTable } from "./flow.ts";
import { decode, formatAddr } from "./packet.ts";
import type { RuleSet } from "./rules/compile.ts";
import type { Rule } from "./rules/parse.ts";

export interface Detection {
  /** Index of the packet in its batch. */
  packet: number;
  sid: number;
  rev: number;
  msg: string;
  action: Rule["action"];
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  toServer: boolean;
}

export interface BatchResult {
  drop: number[];
  detections: Detection[];
  malformed: number;
}

export interface EngineStats {
  version: number;
  rules: number;
  unanchored: number;
  indexBytes: number;
  packets: number;
  bytes: number;
  malformed: number;
  detections: number;
  budgetExceeded: number;
  flows: number;
  flowEvictions: number;
  /** Per-signature hits, busiest first (rules with at least one hit, at most `limit`). */
  signatures: { sid: number; rev: number; msg: string; action: string; hits: number }[];
}

/** Detections one batch reports at most; the rest are counted (a flood must not flood the event stream). */
export const MAX_DETECTIONS_PER_BATCH = 256;

export class IpsEngine {
  private readonly flows: FlowTable;
  private packets = 0;
  private bytes = 0;
  private malformed = 0;
  private detections = 0;

  constructor(
    readonly version: number,
    readonly ruleSet: RuleSet,
    opts: { maxFlows?: number } = {},
  ) {
    this.flows = new FlowTable(opts.maxFlows);
  }

  inspect(data: Uint8Array, lens: readonly number[]): BatchResult {
    const result: BatchResult = { drop: [], detections: [], malformed: 0 };
    let off = 0;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i]!;
      if (!Number.isInteger(len) || len < 0 || off + len > data.length) {
        // A batch that lies about its lengths is the supervisor's bug; stop, pass the rest.
        result.malformed += lens.length - i;
        break;
      }
      const pkt = data.subarray(off, off + len);
      off += len;
      this.packets++;
      this.bytes += len;
      const d = decode(pkt);
      if (!d) {
        result.malformed++;
        continue;
      }
      const flow = this.flows.track(d);
      const matched = this.ruleSet.match(d, flow.toServer, flow.established);
      if (!matched.length) continue;
      let drop = false;
      for (const r of matched) {
        const rule = this.ruleSet.rules[r]!.rule;
        if (rule.action === "drop") drop = true;
        this.detections++;
        if (result.detections.length < MAX_DETECTIONS_PER_BATCH) {
          result.detections.push({
            packet: i,
            sid: rule.sid,
            rev: rule.rev,
            msg: rule.msg,
            action: rule.action,
            proto: d.proto,
            src: formatAddr(d.src),
            sport: d.sport,
            dst: formatAddr(d.dst),
            dport: d.dport,
            toServer: flow.toServer,
          });
        }
      }
      if (drop) result.drop.push(i);
    }
    this.malformed += result.malformed;
    return result;
  }

  stats(limit = 1000): EngineStats {
    const rs = this.ruleSet;
    const hit: number[] = [];
    for (let i = 0; i < rs.hits.length; i++) if (rs.hits[i]! > 0) hit.push(i);
    hit.sort((a, b) => rs.hits[b]! - rs.hits[a]!);
    return {
      version: this.version,
      rules: rs.rules.length,
      unanchored: rs.unanchored,
      indexBytes: rs.indexBytes,
      packets: this.packets,
      bytes: this.bytes,
      malformed: this.malformed,
      detections: this.detections,
      budgetExceeded: rs.stats.budgetExceeded,
      flows: this.flows.size,
      flowEvictions: this.flows.evictions,
      signatures: hit.slice(0, limit).map((i) => {
        const r = rs.rules[i]!.rule;
        return { sid: r.sid, rev: r.rev, msg: r.msg, action: r.action, hits: rs.hits[i]! };
      }),
    };
  }
}
