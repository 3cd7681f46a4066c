/**
 * One request to a host process, as every part of the manager sends it:
 * the operation is recorded on the group while it runs (so a crash can say
 * what the host was doing, S2), metrics are kept per group and method, and
 * a crash comes back as HND_HOST_CRASHED naming the operation.
 */
import { HandlerError } from "../errors.ts";
import { ipcRequests, ipcSeconds } from "./host-metrics.ts";
import type { HostProcess } from "./process.ts";
import type { GroupRec } from "./records.ts";

export interface HostRequestOptions {
  timeoutMs: number;
  /** What the request does, in words ("validate DatasetA v3"): crash errors and S2 blame name it. */
  what: string;
  /** A candidate's validation or load: a crash during it is the candidate's fault (S2). */
  candidate: boolean;
  signal?: AbortSignal;
  quiet?: boolean;
}

let opSeq = 0;

export async function requestHost(
  g: GroupRec,
  proc: HostProcess,
  method: string,
  args: unknown,
  o: HostRequestOptions,
): Promise<unknown> {
  const id = ++opSeq;
  g.ops.set(id, { what: o.what, candidate: o.candidate });
  const started = performance.now();
  let result = "ok";
  try {
    return await proc.request(method, args, { timeoutMs: o.timeoutMs, signal: o.signal, quiet: o.quiet });
  } catch (e) {
    const code = (e as { code?: string }).code;
    result =
      code === "HND_HOST_CRASHED"
        ? "crashed"
        : code === "HND_IPC_TIMEOUT"
          ? "timeout"
          : code === "HND_IPC_CANCELLED"
            ? "cancelled"
            : "error";
    if (code === "HND_HOST_CRASHED") {
      throw new HandlerError("HND_HOST_CRASHED", `${o.what}: ${(e as Error).message}`, {
        details: { group: g.name, during: o.what },
      });
    }
    throw e;
  } finally {
    g.ops.delete(id);
    ipcRequests.inc({ group: g.name, method, result });
    ipcSeconds.observe({ group: g.name, method }, (performance.now() - started) / 1000);
  }
}
