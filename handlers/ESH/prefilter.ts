/**
 * A literal prefilter for the ESH matcher. Most log lines match no rule,
 * and RE2 in JavaScript costs microseconds per line however simple the
 * pattern; a substring search costs nanoseconds. So for each pattern we
 * derive a set of literals of which at least one must occur in any line the
 * pattern matches ("necessary literals"), and a line that contains none of
 * the literals of any rule is skipped without running RE2.
 *
 * The derivation is conservative: anything it does not fully understand
 * (flags such as (?i), \Q…\E, classes and escapes it cannot turn into
 * literals) gives "no literals" for that rule, and a source with such a rule
 * runs every line through RE2 as before. The search itself is one native
 * RegExp made only of escaped literals joined by `|`: no quantifiers, no
 * groups, so even a backtracking engine is linear in the line length
 * (bounded by line length × total literal length).
 */

class Bail extends Error {}

const MIN_LITERAL = 3;

/** Necessary literals of an RE2 pattern (one must occur in every match), or null. */
export function necessaryLiterals(pattern: string): string[] | null {
  try {
    const p = new Parser(pattern);
    const set = p.alternation();
    if (p.i !== pattern.length) return null;
    return set && set.length > 0 ? [...new Set(set)] : null;
  } catch (e) {
    if (e instanceof Bail) return null;
    throw e;
  }
}

class Parser {
  i = 0;
  constructor(private readonly s: string) {}

  alternation(): string[] | null {
    const branches = [this.sequence()];
    while (this.s[this.i] === "|") {
      this.i++;
      branches.push(this.sequence());
    }
    if (branches.some((b) => b === null)) return null;
    return branches.flat() as string[];
  }

  /** The best necessary set of a concatenation: its most selective literal run or group. */
  private sequence(): string[] | null {
    const candidates: string[][] = [];
    let run = "";
    const flush = () => {
      if (run) candidates.push([run]);
      run = "";
    };
    while (this.i < this.s.length && this.s[this.i] !== "|" && this.s[this.i] !== ")") {
      const c = this.s[this.i]!;
      if (c === "(") {
        flush();
        this.i++;
        if (this.s[this.i] === "?") {
          if (this.s[this.i + 1] === ":") this.i += 2;
          else if (this.s[this.i + 1] === "P" || this.s[this.i + 1] === "<") {
            const close = this.s.indexOf(">", this.i);
            if (close < 0) throw new Bail();
            this.i = close + 1;
          } else throw new Bail(); // flags: case folding changes what "literal" means
        }
        const inner = this.alternation();
        if (this.s[this.i] !== ")") throw new Bail();
        this.i++;
        const optional = this.quantifier();
        if (!optional && inner) candidates.push(inner);
        continue;
      }
      if (c === "[") {
        flush();
        this.skipClass();
        this.quantifier();
        continue;
      }
      if (c === "." || c === "^" || c === "$") {
        flush();
        this.i++;
        this.quantifier();
        continue;
      }
      if (c === "*" || c === "+" || c === "?" || c === "{") throw new Bail();
      let ch = c;
      if (c === "\\") {
        const d = this.s[this.i + 1];
        if (d === undefined || d === "Q" || d === "E") throw new Bail();
        this.i += 2;
        if (/[A-Za-z0-9]/.test(d)) {
          // \d, \w, \b, \x41, \pL…: not a literal we can use; skip its argument where it has one.
          flush();
          if (d === "x" || d === "p" || d === "P") this.skipEscapeArgument();
          this.quantifier();
          continue;
        }
        ch = d;
      } else this.i++;
      const q = this.peekQuantifier();
      if (q === "optional") {
        flush();
        this.quantifier();
      } else if (q === "repeat") {
        run += ch;
        flush();
        this.quantifier();
      } else run += ch;
    }
    flush();
    let best: string[] | null = null;
    let bestScore = MIN_LITERAL - 1;
    for (const set of candidates) {
      const score = Math.min(...set.map((x) => x.length));
      if (score > bestScore) {
        best = set;
        bestScore = score;
      }
    }
    return best;
  }

  private skipEscapeArgument(): void {
    if (this.s[this.i] === "{") {
      const close = this.s.indexOf("}", this.i);
      if (close < 0) throw new Bail();
      this.i = close + 1;
    } else this.i += this.s[this.i - 1] === "x" ? 2 : 1;
  }

  private skipClass(): void {
    this.i++;
    if (this.s[this.i] === "^") this.i++;
    if (this.s[this.i] === "]") this.i++;
    while (this.i < this.s.length && this.s[this.i] !== "]") {
      if (this.s[this.i] === "\\") this.i++;
      else if (this.s.startsWith("[:", this.i)) {
        const close = this.s.indexOf(":]", this.i);
        if (close < 0) throw new Bail();
        this.i = close + 1;
      }
      this.i++;
    }
    if (this.s[this.i] !== "]") throw new Bail();
    this.i++;
  }

  private peekQuantifier(): "none" | "optional" | "repeat" {
    const q = this.s[this.i];
    if (q === "?" || q === "*") return "optional";
    if (q === "+") return "repeat";
    if (q === "{") {
      const m = /^\{(\d+)(,\d*)?\}/.exec(this.s.slice(this.i));
      if (!m) return "none"; // a literal "{" in RE2 when not a repetition
      return Number(m[1]) === 0 ? "optional" : "repeat";
    }
    return "none";
  }

  /** Consumes a quantifier (and a lazy `?`); returns whether it makes the atom optional. */
  private quantifier(): boolean {
    const kind = this.peekQuantifier();
    if (kind === "none") return false;
    if (this.s[this.i] === "{") this.i = this.s.indexOf("}", this.i) + 1;
    else this.i++;
    if (this.s[this.i] === "?") this.i++;
    return kind === "optional";
  }
}

const escapeLiteral = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");

type Trie = Map<string, Trie> & { end?: boolean };

/**
 * The literals as one regex shaped like a trie (`"code":"GEN_(?:1(?:0_|1_)|…)`):
 * still only literals and non-capturing groups, but JavaScriptCore compiles
 * it ~10x faster than a flat alternation of hundreds of literals and runs it
 * as fast (measured with bench/esh.ts's rule set).
 */
function trieSource(words: readonly string[]): string {
  const root: Trie = new Map();
  for (const w of words) {
    let n = root;
    for (const ch of w) {
      let next = n.get(ch);
      if (!next) {
        next = new Map();
        n.set(ch, next);
      }
      n = next;
    }
    n.end = true;
  }
  const emit = (n: Trie): string => {
    // A literal that ends here is enough by itself; longer ones through it add nothing.
    if (n.end) return "";
    const alts = [...n].map(([ch, child]) => escapeLiteral(ch) + emit(child));
    return alts.length === 1 ? alts[0]! : `(?:${alts.join("|")})`;
  };
  return emit(root);
}

/**
 * One search over the literals of several patterns; null when any pattern
 * has no usable literals (then every line must go to RE2).
 */
export function literalPrefilter(patterns: readonly string[]): RegExp | null {
  const all: string[] = [];
  for (const p of patterns) {
    const lits = necessaryLiterals(p);
    if (!lits) return null;
    all.push(...lits);
  }
  if (all.length === 0) return null;
  return new RegExp(trieSource([...new Set(all)]));
}
