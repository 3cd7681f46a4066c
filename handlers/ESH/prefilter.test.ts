/**
 * The literal prefilter may only skip lines RE2 would not match: checked on
 * hand-picked patterns and by fuzzing lines over each pattern's own alphabet.
 */
import { describe, expect, test } from "bun:test";
import { RE2JS } from "re2js";
import { literalPrefilter, necessaryLiterals } from "./prefilter.ts";

const PATTERNS = [
  '"msg":"update rejected".*"code":"(UPD_NETWORK|UPD_TIMEOUT)"',
  '"msg":"(worker 7 stalled|queue 7 overflow)"|"code":"GEN_7_(FAIL|TIMEOUT)"',
  "abc?def",
  "ab+cde",
  "x{2,3}yzw",
  "foo\\.bar\\d+baz",
  "(?:alpha|beta)gamma(delta)?",
  "(abc|de)fgh|ijk",
  "a(bcd)*efg",
  "[xyz]qrs|tuv{0,1}w",
  "zz(?P<n>abc)yy",
  "h\\x41llo",
  "^start.*end$",
];

describe("necessary literals", () => {
  test("taken from runs and groups, never from optional parts", () => {
    expect(necessaryLiterals('"msg":"update rejected".*"code":"(UPD_NETWORK|UPD_TIMEOUT)"')).toEqual([
      '"msg":"update rejected"',
    ]);
    expect(necessaryLiterals("(?:alpha|beta)gamma(delta)?")).toEqual(["gamma"]);
    expect(necessaryLiterals("a(bcd)*efg")).toEqual(["efg"]);
    expect(necessaryLiterals("abc?d")).toBeNull(); // no necessary run of 3
    expect(necessaryLiterals("(?i)timeout")).toBeNull(); // case folding: not a literal
    expect(necessaryLiterals("\\Qa.b\\E")).toBeNull();
    expect(literalPrefilter(["timeout", "(?i)x"])).toBeNull();
  });

  test("fuzz: whenever RE2 matches a line, the prefilter lets it through", () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let matches = 0;
    for (const p of PATTERNS) {
      const re = RE2JS.compile(p);
      const pre = literalPrefilter([p]);
      const alphabet = `${[...new Set(p.replace(/[\\^$.*+?()[\]{}|]/g, ""))].join("")}ABX7 `;
      const lits = necessaryLiterals(p) ?? [];
      for (let i = 0; i < 20_000; i++) {
        let line = "";
        const len = rand(24);
        for (let k = 0; k < len; k++) line += alphabet[rand(alphabet.length)];
        // Splice in a literal now and then so matches actually happen.
        if (lits.length && rand(3) === 0) line = line.slice(0, 5) + lits[rand(lits.length)] + line.slice(5);
        if (re.test(line)) {
          matches++;
          expect(pre === null || pre.test(line)).toBe(true);
        }
      }
    }
    expect(matches).toBeGreaterThan(100);
  });
});
