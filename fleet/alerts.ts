/**
 * Release alerts: an automatic abort (or an operator's) is logged at error
 * level and POSTed as JSON to every configured webhook (on-call paging, chat,
 * SIEM). Delivery is best effort — a dead webhook is logged and never holds
 * up the abort itself, which has already happened when the alert goes out.
 */
import { log } from "../core/log.ts";

export interface ReleaseAlert {
  kind: "release-aborted" | "release-completed" | "release-stalled" | "release-closed";
  /** The group concerned (release-stalled). */
  group?: string;
  at: string;
  release: string;
  type: string;
  version: number;
  reason: string;
  by?: "operator" | "health";
  /** Groups that had the version and were taken back; groups never reached. */
  revertedGroups?: string[];
  untouchedGroups?: string[];
}

export interface ReleaseAlerter {
  send(alert: ReleaseAlert): void;
  flush(): Promise<void>;
}

const logger = log.child({ component: "release" });

export function webhookAlerter(
  urls: readonly string[],
  opts: { timeoutMs?: number; fetchImpl?: typeof fetch } = {},
): ReleaseAlerter {
  const inflight = new Set<Promise<void>>();
  const deliver = async (url: string, alert: ReleaseAlert) => {
    const doFetch = opts.fetchImpl ?? fetch;
    for (let attempt = 1; attempt <= 2; attempt++) {
      try {
        const res = await doFetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(alert),
          signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        });
        await res.body?.cancel().catch(() => {});
        if (res.ok) return;
        if (res.status < 500 && res.status !== 429) break;
      } catch {
        // one retry below
      }
    }
    logger.warn("release alert delivery failed", { url, kind: alert.kind, release: alert.release });
  };
  return {
    send(alert) {
      const level = alert.kind === "release-aborted" ? "error" : "info";
      logger.log(level, alert.kind, { ...alert });
      for (const url of urls) {
        const p = deliver(url, alert).finally(() => inflight.delete(p));
        inflight.add(p);
      }
    },
    async flush() {
      await Promise.all([...inflight]);
    },
  };
}
