/**
 * A minimal RELP client (Reliable Event Logging Protocol, as rsyslog's
 * imrelp speaks it): the one syslog transport where the server says which
 * messages it took. Frames are `TXNR SP COMMAND SP DATALEN [SP DATA] LF`;
 * the session opens with `open` (offering the `syslog` command), every
 * `syslog` frame is answered by `rsp` with the same TXNR and a status
 * ("200 OK"), and `close` ends it. Messages are pipelined up to a window and
 * a batch counts as delivered only when every frame got its 200.
 */
import type { Socket } from "node:net";
import { nodeNet } from "../../core/lazy-builtins.ts";

export class RelpError extends Error {}

const OFFER = "relp_version=0\nrelp_software=outpost,1,https://example.invalid/outpost\ncommands=syslog";

export class RelpClient {
  private sock?: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private txnr = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (data: string) => void; reject: (e: Error) => void }
  >();
  private dead: Error | null = null;

  constructor(private readonly opts: { host: string; port: number; timeoutMs: number }) {}

  get connected(): boolean {
    return !!this.sock && !this.dead;
  }

  async open(signal?: AbortSignal): Promise<void> {
    this.dead = null;
    this.buf = Buffer.alloc(0);
    this.txnr = 0;
    const sock = nodeNet().connect({ host: this.opts.host, port: this.opts.port });
    this.sock = sock;
    sock.on("data", (d: Buffer) => this.onData(d));
    sock.on("error", (e) =>
      this.die(new RelpError(`RELP ${this.opts.host}:${this.opts.port}: ${e.message}`)),
    );
    sock.on("close", () =>
      this.die(new RelpError(`RELP ${this.opts.host}:${this.opts.port}: connection closed`)),
    );
    await this.withTimeout(
      new Promise<void>((resolve, reject) => {
        sock.once("connect", () => resolve());
        sock.once("error", reject);
      }),
      "connect",
      signal,
    );
    const rsp = await this.withTimeout(this.command("open", OFFER), "open", signal);
    if (!rsp.startsWith("200")) throw new RelpError(`RELP open refused: ${rsp.split("\n")[0]}`);
  }

  /** Sends every message as one `syslog` frame, at most `window` unanswered; resolves when all got 200. */
  async sendAll(messages: readonly string[], window: number, signal?: AbortSignal): Promise<void> {
    let next = 0;
    let failure: Error | null = null;
    const inFlight = new Set<Promise<void>>();
    while (next < messages.length || inFlight.size > 0) {
      while (!failure && next < messages.length && inFlight.size < window) {
        const p: Promise<void> = this.command("syslog", messages[next++]!).then(
          (rsp) => {
            if (!rsp.startsWith("200")) failure ??= new RelpError(`RELP server refused a message: ${rsp}`);
          },
          (e: Error) => {
            failure ??= e;
          },
        );
        const tracked = p.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
      }
      if (inFlight.size === 0) break;
      await this.withTimeout(Promise.race(inFlight), "acknowledgement", signal);
      if (failure) break;
    }
    if (failure) throw failure;
  }

  private command(cmd: string, data: string): Promise<string> {
    if (this.dead) return Promise.reject(this.dead);
    this.txnr = this.txnr >= 999_999_999 ? 1 : this.txnr + 1;
    const nr = this.txnr;
    const body = Buffer.from(data, "utf8");
    const head = Buffer.from(`${nr} ${cmd} ${body.length}${body.length ? " " : ""}`);
    return new Promise<string>((resolve, reject) => {
      this.waiting.set(nr, { resolve, reject });
      this.sock!.write(Buffer.concat([head, body, Buffer.from("\n")]));
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      // Header: TXNR SP COMMAND SP DATALEN, then SP DATA if DATALEN > 0, then LF.
      const s1 = this.buf.indexOf(0x20);
      if (s1 < 0) return;
      const s2 = this.buf.indexOf(0x20, s1 + 1);
      if (s2 < 0) return;
      let end = s2 + 1;
      while (end < this.buf.length && this.buf[end]! >= 0x30 && this.buf[end]! <= 0x39) end++;
      if (end >= this.buf.length) return;
      const nr = Number(this.buf.subarray(0, s1).toString());
      const cmd = this.buf.subarray(s1 + 1, s2).toString();
      const len = Number(this.buf.subarray(s2 + 1, end).toString());
      const dataStart = len > 0 ? end + 1 : end;
      if (this.buf.length < dataStart + len + 1) return;
      const data = this.buf.subarray(dataStart, dataStart + len).toString("utf8");
      this.buf = this.buf.subarray(dataStart + len + 1);
      if (cmd === "serverclose") {
        this.die(new RelpError(`RELP server closed the session: ${data}`));
        return;
      }
      const w = this.waiting.get(nr);
      if (cmd === "rsp" && w) {
        this.waiting.delete(nr);
        w.resolve(data);
      }
    }
  }

  private die(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
    this.sock?.destroy();
  }

  private withTimeout<T>(p: Promise<T>, what: string, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (e: Error) => {
        clearTimeout(t);
        signal?.removeEventListener("abort", onAbort);
        this.die(e);
        reject(e);
      };
      const onAbort = () => fail(new RelpError("RELP: closing"));
      const t = setTimeout(
        () => fail(new RelpError(`RELP ${what} timed out after ${this.opts.timeoutMs} ms`)),
        this.opts.timeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => {
          clearTimeout(t);
          signal?.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e: Error) => fail(e),
      );
    });
  }

  async close(): Promise<void> {
    if (this.connected) {
      await this.withTimeout(this.command("close", ""), "close", undefined).catch(() => {});
    }
    this.die(new RelpError("RELP: closed"));
  }
}
