/**
 * `pid` as an index column of `processes`, as in osquery (its processes
 * table marks pid INDEX and reads only /proc/<pid> for `WHERE pid = N`):
 * the pids a query asks for, when producing only those rows cannot change
 * its result. The scheduled `SELECT … FROM processes WHERE pid = 1` read
 * the stat and status files of every process on the machine every run
 * (~160 files per run on the CI machine, issue 21 idle CPU).
 *
 * Our engine materialises a table and lets SQLite apply the whole WHERE,
 * so the pushdown is only ever a filter on what gets produced: it is taken
 * only where the pid test is necessary for a row to match. Anything it
 * does not prove safe gets every process, as before. It is safe when:
 *  - the statement is one plain SELECT over `processes` alone (one SELECT,
 *    no JOIN or second FROM item, no WITH, UNION, HAVING);
 *  - the WHERE has no OR, NOT, CASE or BETWEEN anywhere (so its top-level
 *    ANDs are the only connectives: every top-level conjunct must hold);
 *  - a conjunct at parenthesis depth 0, between WHERE/AND and AND/end of the
 *    WHERE, is `pid = N`, `N = pid`, `pid == N` or `pid IN (N, …)`, N a
 *    decimal integer of at most 10 digits (`pid` optionally qualified by the
 *    table or its alias), and together they name at most MAX_PIDS pids.
 * Several such conjuncts give the union of their pids (a superset; SQLite
 * still applies each).
 */
import type { Token } from "./sql.ts";

const word = (t: Token | undefined, w: string) => t?.kind === "ident" && !t.quoted && t.value === w;
const op = (t: Token | undefined, o: string) => t?.kind === "op" && t.value === o;

/** The most pids produced one by one; a longer list reads every process instead. */
export const MAX_PIDS = 1024;
/** Words after which a WHERE clause has ended. */
const WHERE_ENDS = new Set(["group", "order", "limit", "window"]);
/** Words that make a top-level AND not the only connective (or make a pid test not a conjunct). */
const UNSAFE_WORDS = new Set([
  "or",
  "not",
  "case",
  "between",
  "having",
  "union",
  "intersect",
  "except",
  "join",
]);

/** The pids `SELECT … FROM processes … WHERE …` needs rows for, or undefined for every process. */
export function processPids(tokens: readonly Token[]): number[] | undefined {
  if (tokens.filter((t) => word(t, "select")).length !== 1 || !word(tokens[0], "select")) return undefined;
  if (tokens.some((t) => t.kind === "ident" && !t.quoted && UNSAFE_WORDS.has(t.value))) return undefined;
  const from = tokens.findIndex((t) => word(t, "from"));
  if (from < 0 || tokens.slice(from + 1).some((t) => word(t, "from"))) return undefined;
  // FROM processes [[AS] alias], then WHERE.
  const names = new Set<string>();
  let i = from + 1;
  const table = tokens[i];
  if (table?.kind !== "ident" || table.value !== "processes") return undefined;
  names.add("processes");
  i++;
  if (word(tokens[i], "as")) i++;
  const alias = tokens[i];
  if (alias?.kind === "ident" && !word(alias, "where")) {
    names.add(alias.value);
    i++;
  }
  if (!word(tokens[i], "where")) return undefined;
  const start = i + 1;
  let end = start;
  while (end < tokens.length && !(tokens[end]?.kind === "ident" && WHERE_ENDS.has(tokens[end]!.value))) end++;

  const pids = new Set<number>();
  let depth = 0;
  let found = false;
  // `pid` or `q.pid` at j: the index after it, or -1.
  const pidAt = (j: number) => {
    const t = tokens[j];
    if (t?.kind !== "ident") return -1;
    if (op(tokens[j + 1], ".")) return names.has(t.value) && tokens[j + 2]?.value === "pid" ? j + 3 : -1;
    return t.value === "pid" && !op(tokens[j - 1], ".") ? j + 1 : -1;
  };
  // Up to 10 digits (pid_max is at most 2^22): a longer literal matches no process either way, and
  // would lose precision as a Number.
  const integer = (t: Token | undefined) =>
    t?.kind === "number" && /^\d{1,10}$/.test(t.value) ? Number(t.value) : -1;
  const closesConjunct = (j: number) => j === end || word(tokens[j], "and");
  for (let j = start; j < end; j++) {
    const t = tokens[j];
    if (op(t, "(")) depth++;
    else if (op(t, ")")) depth--;
    if (depth !== 0 || !(j === start || word(tokens[j - 1], "and"))) continue;
    // pid = N · pid == N · pid IN (N, …)
    const after = pidAt(j);
    if (after >= 0) {
      if ((op(tokens[after], "=") || op(tokens[after], "==")) && integer(tokens[after + 1]) >= 0) {
        if (closesConjunct(after + 2)) {
          pids.add(integer(tokens[after + 1]));
          found = true;
        }
      } else if (word(tokens[after], "in") && op(tokens[after + 1], "(")) {
        const list: number[] = [];
        let k = after + 2;
        for (; integer(tokens[k]) >= 0; k += 2) {
          list.push(integer(tokens[k]));
          if (!op(tokens[k + 1], ",")) break;
        }
        if (list.length > 0 && op(tokens[k + 1], ")") && closesConjunct(k + 2)) {
          for (const p of list) pids.add(p);
          found = true;
        }
      }
      continue;
    }
    // N = pid
    if (integer(t) >= 0 && (op(tokens[j + 1], "=") || op(tokens[j + 1], "=="))) {
      const back = pidAt(j + 2);
      if (back >= 0 && closesConjunct(back)) {
        pids.add(integer(t));
        found = true;
      }
    }
  }
  // Past MAX_PIDS, opening each asked-for pid costs more than listing /proc once.
  return found && pids.size <= MAX_PIDS ? [...pids].sort((a, b) => a - b) : undefined;
}
