/**
 * Posts each alert as JSON to a URL (the vendor's telemetry endpoint, the
 * admin's SIEM webhook). Delivery is best effort with a bounded retry: an
 * unreachable alert endpoint is logged, and never blocks or fails an update.
 */
import type { Alert, AlertSink } from "../../core/agent/alerts.ts";
import { log } from "../../core/log.ts";

export class HttpAlertSink implements AlertSink {
  readonly name: string;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly url: string,
    private readonly opts: { timeoutMs?: number; attempts?: number; fetchImpl?: typeof fetch } = {},
  ) {
    this.name = `http:${url}`;
  }

  send(alert: Alert): Promise<void> {
    const p = this.deliver(alert).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return p;
  }

  private async deliver(alert: Alert): Promise<void> {
    const attempts = this.opts.attempts ?? 3;
    const doFetch = this.opts.fetchImpl ?? fetch;
    for (let i = 1; i <= attempts; i++) {
      try {
        const res = await doFetch(this.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(alert),
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
        });
        await res.body?.cancel().catch(() => {});
        if (res.ok) return;
        if (res.status < 500 && res.status !== 429) break;
      } catch {
        // retried below
      }
      if (i < attempts) await Bun.sleep(200 * 2 ** i);
    }
    log.warn("alert delivery failed", { sink: this.name, code: alert.code });
  }

  async flush(): Promise<void> {
    await Promise.all([...this.inflight]);
  }
}

export function alertSinksFromUrls(urls: readonly string[], timeoutSeconds = 10): AlertSink[] {
  return urls.map((u) => new HttpAlertSink(u, { timeoutMs: timeoutSeconds * 1000 }));
}
