/**
 * Free-form version comparison for kernel module versions, which follow no
 * scheme: "1.2.3", "5.10.0-k", "2.4.1_rc3", "v3", "1.0.0.18-NAPI",
 * "R12b". Both strings are split into runs of digits and runs of other
 * characters (separators . - _ + ~ and spaces only separate); digit runs
 * compare as numbers, other runs case-insensitively, and a version that is
 * a prefix of the other is the older ("1.2" < "1.2.1"), except that a
 * trailing pre-release word (alpha, beta, rc, pre) makes it older than the
 * bare release ("2.0rc1" < "2.0"), as Debian's `~` does.
 */
const PRE = /^(alpha|beta|pre|rc|dev|a|b)$/i;

function tokens(v: string): (number | string)[] {
  const out: (number | string)[] = [];
  for (const m of v
    .trim()
    .replace(/^v(?=\d)/i, "")
    .matchAll(/(\d+)|([^\d.\-_+~\s]+)/g)) {
    out.push(m[1] !== undefined ? Number(m[1]) : m[2]!.toLowerCase());
  }
  return out;
}

/** < 0 when a is older than b, 0 when equal, > 0 when newer. */
export function compareVersions(a: string, b: string): number {
  const x = tokens(a);
  const y = tokens(b);
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const p = x[i];
    const q = y[i];
    if (p === undefined) return typeof q === "string" && PRE.test(q) ? 1 : -1;
    if (q === undefined) return typeof p === "string" && PRE.test(p) ? -1 : 1;
    if (typeof p === "number" && typeof q === "number") {
      if (p !== q) return p - q;
    } else if (typeof p === "number") {
      // "1.2" vs "1.rc": a number is newer than a pre-release word, older than any other word.
      return PRE.test(q as string) ? 1 : -1;
    } else if (typeof q === "number") {
      return PRE.test(p) ? -1 : 1;
    } else if (p !== q) {
      if (PRE.test(p) !== PRE.test(q)) return PRE.test(p) ? -1 : 1;
      return p < q ? -1 : 1;
    }
  }
  return 0;
}
