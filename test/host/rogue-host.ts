/**
 * A host process gone wrong, for the IPC robustness tests: started in place
 * of `agent host` (HostManager `command` option), it speaks the protocol
 * badly. Modes (argv[2]):
 *
 *   garbage  writes random bytes to stdout at once (a crashing runtime's
 *            panic text, a handler's stray output before the fd swap)
 *   liar     frames correctly, but before answering each request sends an
 *            answer for an unknown id, an oversized frame, a malformed
 *            message, a forged supervisor event; then answers with the
 *            wrong shape
 */
import { writeSync } from "node:fs";
import { encodeFrame, FrameReader } from "../../core/host/frame.ts";

const mode = process.argv[2];
const out = (bytes: Uint8Array) => {
  let off = 0;
  while (off < bytes.length) off += writeSync(1, bytes, off);
};

if (mode === "garbage") {
  let x = 0x2545f491;
  const junk = new Uint8Array(4096).map(() => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
  out(new TextEncoder().encode("panic: runtime error: index out of range\n"));
  out(junk);
}

const reader = new FrameReader({
  maxBytes: 1 << 30,
  onError: () => {},
  onMessage: (m) => {
    const req = m as { t: string; id: number; m: string };
    if (mode !== "liar" || req.t !== "req") return;
    out(encodeFrame({ t: "res", id: req.id + 1000, ok: true, r: "for nobody" }));
    out(encodeFrame({ t: "evt", type: "blob", f: { data: new Uint8Array(200 * 1024) } }));
    out(encodeFrame({ t: "res", id: "one", ok: "yes" }));
    out(encodeFrame({ t: "evt", type: "alert", f: { alert: { kind: "forged" } } }));
    out(encodeFrame({ t: "res", id: req.id, ok: true, r: { pid: "me", uid: -1 } }));
  },
});
for await (const chunk of Bun.stdin.stream()) reader.push(chunk);
