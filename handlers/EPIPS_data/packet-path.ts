/**
 * The supervisor's half of the packet path: packets from the NFQUEUE
 * reader are gathered into batches, sent to the ips host in one IPC call
 * each (`EPIPS_data.inspect`), and answered with verdicts.
 *
 *   prevent  a packet waits for its batch's answer; drop rules drop it.
 *   detect   a packet is accepted on arrival; a copy is inspected for alerts.
 *
 * Fail-open everywhere: a batch the host does not answer within
 * `verdictTimeoutMs` (host killed, hung, crash-looping) is accepted; with
 * `maxInFlight` batches outstanding, new packets are accepted uninspected
 * and counted. Memory is bounded by maxInFlight × maxPackets packets. Every
 * verdict's latency (arrival → verdict) is recorded for status and the
 * self-disable check.
 */

import type { IpsConfig } from "../../core/ips-config.ts";
import { NF_ACCEPT, NF_DROP, type QueuedPacket } from "../../core/sensors/nfqueue/nfq.ts";
import type { BatchResult, Detection } from "./engine.ts";
import { isPureAck } from "./fastpath.ts";

export interface VerdictSink {
  verdict(id: number, v: typeof NF_ACCEPT | typeof NF_DROP): void;
}

export type InspectCall = (
  args: { data: Uint8Array; lens: number[] },
  signal: AbortSignal,
) => Promise<unknown>;

export interface PathCounters {
  packets: number;
  inspected: number;
  accepted: number;
  dropped: number;
  /** Accepted without inspection: too many batches in flight. */
  uninspected: number;
  /** Batches accepted because the host did not answer in time. */
  timeouts: number;
  /** Batches accepted because the call failed (host died, bad answer). */
  errors: number;
  malformed: number;
  detections: number;
  /** Pure TCP ACKs accepted without the engine (fastpath.ts). */
  pureAcks: number;
}

const LATENCY_RING = 8192;

export class PacketPath {
  readonly counters: PathCounters = {
    packets: 0,
    inspected: 0,
    accepted: 0,
    dropped: 0,
    uninspected: 0,
    timeouts: 0,
    errors: 0,
    malformed: 0,
    detections: 0,
    pureAcks: 0,
  };
  /** All verdict latencies (ms), a ring for p50/p99 in status. */
  private readonly ring = new Float64Array(LATENCY_RING);
  private ringN = 0;
  /** Latencies since the watchdog last took them. */
  private window: number[] = [];
  private batch: QueuedPacket[] = [];
  private timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined;
  private inFlight = 0;
  /** Packets held for a verdict (prevent mode), so stop() can release them. */
  private readonly held = new Map<number, number>();
  peakPending = 0;
  /** Highest number of held packets since the watchdog last asked (a backlog between two samples). */
  private windowPeak = 0;

  constructor(
    private readonly cfg: IpsConfig,
    private readonly sink: VerdictSink,
    private readonly inspect: InspectCall,
    private readonly onDetections: (d: Detection[], packets: QueuedPacket[]) => void,
  ) {}

  get pending(): number {
    return this.held.size;
  }

  onPacket(p: QueuedPacket): void {
    this.counters.packets++;
    const prevent = this.cfg.mode === "prevent";
    if (isPureAck(p.bytes)) {
      this.counters.pureAcks++;
      if (prevent) this.held.set(p.id, p.at); // decide() releases held packets only
      this.decide(p, NF_ACCEPT);
      return;
    }
    if (!prevent) this.decide(p, NF_ACCEPT);
    if (this.inFlight >= this.cfg.batch.maxInFlight && this.batch.length >= this.cfg.batch.maxPackets) {
      this.counters.uninspected++;
      if (prevent) this.decide(p, NF_ACCEPT);
      return;
    }
    if (prevent) this.held.set(p.id, p.at);
    this.peakPending = Math.max(this.peakPending, this.held.size);
    this.windowPeak = Math.max(this.windowPeak, this.held.size);
    this.batch.push(p);
    if (this.batch.length >= this.cfg.batch.maxPackets && this.inFlight < this.cfg.batch.maxInFlight)
      this.flush();
    else if (!this.timer) {
      this.timer =
        this.cfg.batch.maxWaitMs > 0
          ? setTimeout(() => this.flush(), this.cfg.batch.maxWaitMs)
          : setImmediate(() => this.flush());
    }
  }

  /** Latencies recorded since the last call (the watchdog's window). */
  takeWindow(): number[] {
    const w = this.window;
    this.window = [];
    return w;
  }

  /** The backlog peak since the last call. */
  takePeak(): number {
    const p = this.windowPeak;
    this.windowPeak = this.held.size;
    return p;
  }

  latencySamples(): Float64Array {
    return this.ring.subarray(0, Math.min(this.ringN, LATENCY_RING));
  }

  /** Accepts everything held (the queue is about to go away: unbinding would drop them). */
  releaseAll(): void {
    if (this.timer) {
      clearTimeout(this.timer as ReturnType<typeof setTimeout>);
      clearImmediate(this.timer as ReturnType<typeof setImmediate>);
      this.timer = undefined;
    }
    for (const id of [...this.held.keys()]) this.sink.verdict(id, NF_ACCEPT);
    this.counters.accepted += this.held.size;
    this.held.clear();
    this.batch = [];
  }

  private decide(p: QueuedPacket, v: typeof NF_ACCEPT | typeof NF_DROP): void {
    if (this.cfg.mode === "prevent" && !this.held.delete(p.id)) return; // already released
    this.sink.verdict(p.id, v);
    if (v === NF_ACCEPT) this.counters.accepted++;
    else this.counters.dropped++;
    const ms = performance.now() - p.at;
    this.ring[this.ringN++ % LATENCY_RING] = ms;
    if (this.window.length < 100_000) this.window.push(ms);
  }

  private flush(): void {
    this.timer = undefined;
    if (this.batch.length === 0) return;
    if (this.inFlight >= this.cfg.batch.maxInFlight) {
      // Wait for an answer to free a slot; onPacket caps the batch meanwhile.
      return;
    }
    const packets = this.batch.splice(0, this.cfg.batch.maxPackets);
    if (this.batch.length && !this.timer) this.timer = setImmediate(() => this.flush());
    const lens = packets.map((p) => p.bytes.length);
    const data = new Uint8Array(lens.reduce((a, b) => a + b, 0));
    let off = 0;
    for (const p of packets) {
      data.set(p.bytes, off);
      off += p.bytes.length;
    }
    this.inFlight++;
    const ac = new AbortController();
    let settled = false;
    let timedOut = false;
    const prevent = this.cfg.mode === "prevent";
    const acceptAll = () => {
      if (prevent) for (const p of packets) this.decide(p, NF_ACCEPT);
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      timedOut = true;
      this.counters.timeouts++;
      ac.abort();
      acceptAll();
    }, this.cfg.verdictTimeoutMs);
    this.inspect({ data, lens }, ac.signal)
      .then((raw) => {
        if (settled) return;
        settled = true;
        const r = raw as BatchResult;
        if (!r || !Array.isArray(r.drop) || !Array.isArray(r.detections))
          throw new Error("bad inspect answer");
        this.counters.inspected += packets.length;
        this.counters.malformed += r.malformed ?? 0;
        this.counters.detections += r.detections.length;
        if (prevent) {
          const drop = new Set(r.drop.filter((i) => Number.isInteger(i)));
          packets.forEach((p, i) => {
            this.decide(p, drop.has(i) ? NF_DROP : NF_ACCEPT);
          });
        }
        if (r.detections.length) this.onDetections(r.detections, packets);
      })
      .catch(() => {
        settled = true;
        if (!timedOut) this.counters.errors++;
        acceptAll();
      })
      .finally(() => {
        clearTimeout(timer);
        this.inFlight--;
        if (this.batch.length && !this.timer) this.timer = setImmediate(() => this.flush());
      });
  }
}
