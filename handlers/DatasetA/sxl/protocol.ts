/**
 * The SXL protocol over DNS (docs/sxl.md): how a lookup is spelled as a
 * query name and how a verdict is spelled as an answer. Shared by the agent
 * (client) and `contentctl sxl serve` (server), so the two cannot drift.
 *
 *   query   <sha256[0:32]>.<sha256[32:64]>.<detection-id>.v1.<zone>   type A (or TXT)
 *   answer  A 127.0.0.<code>   code = verdict (low 4 bits) | 0x10 when a sample is requested
 *           TXT "v=sxl1 verdict=<verdict> sample=<0|1>"
 *           NXDOMAIN (with the zone SOA) = no information: keep the local verdict
 *
 * detection-id = base32hex (lower case, no padding) of the first 10 bytes of
 * SHA-256(detection name): 16 characters, DNS-safe, case-insensitive, and no
 * detection name ever appears on the wire.
 */

export const PROTOCOL_LABEL = "v1";
export const VERDICTS = ["ignore", "malware", "suspicious", "unknown"] as const;
export type Verdict = (typeof VERDICTS)[number];

const CODES: Record<Verdict, number> = { ignore: 1, malware: 2, suspicious: 3, unknown: 4 };
export const SAMPLE_BIT = 0x10;
const BASE32HEX = "0123456789abcdefghijklmnopqrstuv";

function base32hex(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32HEX[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32HEX[(value << (5 - bits)) & 31];
  return out;
}

const ids = new Map<string, string>();

export function detectionId(detectionName: string): string {
  let id = ids.get(detectionName);
  if (id === undefined) {
    id = base32hex(new Uint8Array(Bun.CryptoHasher.hash("sha256", detectionName)).subarray(0, 10));
    // Detection names are a bounded vocabulary (the signature set); the cap is a backstop.
    if (ids.size >= 100_000) ids.clear();
    ids.set(detectionName, id);
  }
  return id;
}

/** Longest zone that still leaves room for the lookup labels in a 253-character name. */
export const MAX_ZONE_LENGTH = 253 - (32 + 1 + 32 + 1 + 16 + 1 + PROTOCOL_LABEL.length + 1);

export function queryName(sha256: string, detection: string, zone: string): string {
  const h = sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(h)) throw new Error(`not a SHA-256 hex digest: ${sha256}`);
  return `${h.slice(0, 32)}.${h.slice(32)}.${detectionId(detection)}.${PROTOCOL_LABEL}.${normalizeZone(zone)}`;
}

export function normalizeZone(zone: string): string {
  return zone.replace(/\.$/, "").toLowerCase();
}

/** The lookup a query name carries, or null when it is not an SXL v1 name under `zone`. */
export function parseQueryName(qname: string, zone: string): { sha256: string; detectionId: string } | null {
  const name = qname.replace(/\.$/, "").toLowerCase();
  const z = normalizeZone(zone);
  if (!name.endsWith(`.${z}`)) return null;
  const labels = name.slice(0, -(z.length + 1)).split(".");
  if (labels.length !== 4 || labels[3] !== PROTOCOL_LABEL) return null;
  const [h1, h2, det] = labels as [string, string, string];
  if (!/^[0-9a-f]{32}$/.test(h1) || !/^[0-9a-f]{32}$/.test(h2) || !/^[0-9a-v]{16}$/.test(det)) return null;
  return { sha256: h1 + h2, detectionId: det };
}

export function verdictAddress(verdict: Verdict, sample: boolean): string {
  return `127.0.0.${CODES[verdict] | (sample ? SAMPLE_BIT : 0)}`;
}

export function parseVerdictAddress(address: string): { verdict: Verdict; sample: boolean } | null {
  const m = address.match(/^127\.0\.0\.(\d{1,3})$/);
  if (!m) return null;
  const code = Number(m[1]);
  const verdict = VERDICTS.find((v) => CODES[v] === (code & 0x0f));
  if (!verdict || (code & ~(0x0f | SAMPLE_BIT)) !== 0) return null;
  return { verdict, sample: (code & SAMPLE_BIT) !== 0 };
}

export function verdictText(verdict: Verdict, sample: boolean, note?: string): string[] {
  const main = `v=sxl1 verdict=${verdict} sample=${sample ? 1 : 0}`;
  if (!note) return [main];
  // TXT strings are at most 255 bytes; long notes are split across strings.
  const parts: string[] = [main];
  for (let i = 0; i < note.length; i += 200) parts.push(`note=${note.slice(i, i + 200)}`);
  return parts;
}

/** Randomises letter case (DNS 0x20): an off-path spoofer must also guess it. */
export function randomizeCase(name: string, random: () => number = Math.random): string {
  const b = Buffer.from(name, "latin1");
  let bits = 0;
  let left = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 97 || c > 122) continue;
    if (left === 0) {
      bits = Math.floor(random() * 0x100000000);
      left = 32;
    }
    if (bits & 1) b[i] = c - 32;
    bits >>>= 1;
    left--;
  }
  return b.toString("latin1");
}
