/** Fixtures shared by the Hmpa_data tests (not used at runtime). */
import { type Capabilities, type ContentView, viewOverBytes } from "../../core/handler/contract.ts";

/** Deterministic PRNG (mulberry32) so every run queries the same "random" inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** `count` distinct thumbprints `<prefix>:<index as 16 hex>`, generated lazily. */
export function* syntheticThumbprints(prefix: string, start: number, count: number): Generator<string> {
  for (let i = start; i < start + count; i++) yield `${prefix}:${i.toString(16).padStart(16, "0")}`;
}

/** A staged package as the host presents it to a handler: a map of payload files. */
export function contentView(files: Record<string, Uint8Array>, version = 1): ContentView {
  return viewOverBytes({
    type: "Hmpa_data",
    version,
    signingTime: "2025-01-01T00:00:00.000Z",
    files: Object.keys(files).sort(),
    read(path) {
      const data = files[path];
      if (!data) throw new Error(`no payload file ${path}`);
      return data;
    },
    readText(path) {
      return new TextDecoder().decode(this.read(path));
    },
  });
}

export function recordingCaps(): {
  caps: Capabilities;
  records: { level: string; msg: string; f?: unknown }[];
} {
  const records: { level: string; msg: string; f?: unknown }[] = [];
  return {
    records,
    caps: {
      log: {
        info: (msg, f) => records.push({ level: "info", msg, f }),
        warn: (msg, f) => records.push({ level: "warn", msg, f }),
      },
      events: { emit: (type, f) => records.push({ level: "event", msg: type, f }) },
      workDir: "/nonexistent-workdir",
    },
  };
}

/** Recomputes the checksum as docs/hmpa-format.md defines it, independently of format.ts. */
export function reseal(file: Uint8Array): Uint8Array {
  const digest = new Bun.CryptoHasher("sha256")
    .update(file.subarray(0, 32))
    .update(file.subarray(64))
    .digest();
  file.set(digest, 32);
  return file;
}
