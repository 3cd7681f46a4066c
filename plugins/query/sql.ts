/**
 * Just enough SQL lexing for the embedded engine to decide what to produce
 * before SQLite runs a query: one statement only, read-only statement kinds,
 * which columns are named (so expensive columns of unnamed ones are
 * skipped), and the `path`/`directory` constraints that the `file` and
 * `hash` tables need (osquery's "required" columns). SQLite itself stays the
 * parser of record: everything here only has to find a superset — the real
 * WHERE clause filters the rows afterwards.
 */

export type TokenKind = "ident" | "string" | "number" | "blob" | "op" | "param";

export interface Token {
  kind: TokenKind;
  /** Identifiers lower-cased and unquoted; strings unescaped; operators as written. */
  value: string;
  /** An identifier that was quoted ("x", `x`, [x]) is never a keyword. */
  quoted?: boolean;
}

export class SqlLexError extends Error {}

const OPS = ["||", "<=", ">=", "<>", "!=", "==", "<<", ">>", "->>", "->"];

/** Splits SQL into tokens, dropping whitespace and comments. */
export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    if (c === "'") {
      let v = "";
      i++;
      for (;;) {
        if (i >= n) throw new SqlLexError("unterminated string literal");
        if (sql[i] === "'") {
          if (sql[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += sql[i++];
      }
      out.push({ kind: "string", value: v });
      continue;
    }
    if (c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      let v = "";
      i++;
      for (;;) {
        if (i >= n) throw new SqlLexError("unterminated quoted identifier");
        if (sql[i] === close) {
          if (close !== "]" && sql[i + 1] === close) {
            v += close;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += sql[i++];
      }
      out.push({ kind: "ident", value: v.toLowerCase(), quoted: true });
      continue;
    }
    if ((c === "x" || c === "X") && sql[i + 1] === "'") {
      const end = sql.indexOf("'", i + 2);
      if (end < 0) throw new SqlLexError("unterminated blob literal");
      out.push({ kind: "blob", value: sql.slice(i + 2, end) });
      i = end + 1;
      continue;
    }
    if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      out.push({ kind: "ident", value: sql.slice(i, j).toLowerCase() });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(sql[i + 1] ?? ""))) {
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)/.exec(sql.slice(i));
      const text = m?.[0] ?? c;
      out.push({ kind: "number", value: text });
      i += text.length;
      continue;
    }
    if (c === "?" || c === ":" || c === "@" || c === "$") {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_]/.test(sql[j]!)) j++;
      out.push({ kind: "param", value: sql.slice(i, j) });
      i = j;
      continue;
    }
    const op = OPS.find((o) => sql.startsWith(o, i));
    if (op) {
      out.push({ kind: "op", value: op });
      i += op.length;
      continue;
    }
    out.push({ kind: "op", value: c });
    i++;
  }
  return out;
}

const isWord = (t: Token | undefined, w: string) => t?.kind === "ident" && !t.quoted && t.value === w;
const isOp = (t: Token | undefined, o: string) => t?.kind === "op" && t.value === o;

/** Statement kinds a query may be: nothing that writes, attaches or changes settings. */
const READ_ONLY_STARTS = new Set(["select", "with", "values"]);
/** Words that make a statement write even after a WITH prefix. */
const WRITING_WORDS = new Set([
  "insert",
  "update",
  "delete",
  "replace",
  "attach",
  "detach",
  "vacuum",
  "pragma",
]);

/** Statements that are valid SQL but not queries. */
const REFUSED_STARTS = new Set([
  "insert",
  "update",
  "delete",
  "replace",
  "create",
  "drop",
  "alter",
  "attach",
  "detach",
  "vacuum",
  "pragma",
  "reindex",
  "analyze",
  "begin",
  "commit",
  "end",
  "rollback",
  "savepoint",
  "release",
  "explain",
]);

export type StatementCheck =
  | { ok: true; tokens: Token[] }
  | { ok: false; reason: string; kind: "refused" | "syntax" };

/**
 * One read-only statement, or the reason it is refused. A trailing `;` is
 * fine (osquery packs end their queries with one); a second statement is not.
 */
export function checkStatement(sql: string): StatementCheck {
  let tokens: Token[];
  try {
    tokens = tokenize(sql);
  } catch (e) {
    return { ok: false, reason: (e as Error).message, kind: "syntax" };
  }
  const semi = tokens.findIndex((t) => isOp(t, ";"));
  if (semi >= 0) {
    if (tokens.slice(semi + 1).some((t) => !isOp(t, ";")))
      return { ok: false, reason: "only one statement per query", kind: "refused" };
    tokens = tokens.slice(0, semi);
  }
  const first = tokens[0];
  if (!first) return { ok: false, reason: "empty query", kind: "syntax" };
  if (first.kind === "ident" && !first.quoted && REFUSED_STARTS.has(first.value))
    return { ok: false, reason: "only SELECT, WITH and VALUES statements may run", kind: "refused" };
  if (first.kind !== "ident" || first.quoted || !READ_ONLY_STARTS.has(first.value))
    return { ok: false, reason: `near "${first.value}": syntax error`, kind: "syntax" };
  // In a WITH statement a writing verb can only appear at the top level, not as a function call (replace()).
  let depth = 0;
  const writer = tokens.find((t, i) => {
    if (isOp(t, "(")) depth++;
    else if (isOp(t, ")")) depth--;
    return (
      depth === 0 &&
      t.kind === "ident" &&
      !t.quoted &&
      WRITING_WORDS.has(t.value) &&
      !isOp(tokens[i + 1], "(")
    );
  });
  if (first.value === "with" && writer)
    return { ok: false, reason: `${writer.value.toUpperCase()} is not allowed in a query`, kind: "refused" };
  return { ok: true, tokens };
}

/** Lower-cased identifiers the query names (column and table candidates). */
export function namedIdentifiers(tokens: Token[]): Set<string> {
  const out = new Set<string>();
  for (const t of tokens) if (t.kind === "ident") out.add(t.value);
  return out;
}

/** True when the query selects `*` or `alias.*` anywhere (count(*) does not count). */
export function selectsStar(tokens: Token[]): boolean {
  return tokens.some((t, i) => isOp(t, "*") && !isOp(tokens[i - 1], "(") && !isNumericNeighbour(tokens, i));
}

function isNumericNeighbour(tokens: Token[], i: number): boolean {
  // `a * b`: both neighbours are operands, and the left one is not SELECT/DISTINCT/`,`/`.`.
  const left = tokens[i - 1];
  if (!left) return false;
  if (isOp(left, ".") || isOp(left, ",") || isWord(left, "select") || isWord(left, "distinct")) return false;
  if (isWord(left, "all")) return false;
  return left.kind === "number" || left.kind === "ident" || isOp(left, ")");
}

/** alias → table for every `FROM/JOIN table [AS] alias` in the query (tables map to themselves). */
export function tableAliases(tokens: Token[], tables: ReadonlySet<string>): Map<string, string> {
  const aliases = new Map<string, string>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== "ident" || !tables.has(t.value)) continue;
    const prev = tokens[i - 1];
    const inFrom = isWord(prev, "from") || isWord(prev, "join") || isOp(prev, ",") || isOp(prev, ".");
    if (!inFrom) continue;
    aliases.set(t.value, t.value);
    let j = i + 1;
    if (isWord(tokens[j], "as")) j++;
    const a = tokens[j];
    if (a?.kind === "ident" && (a.quoted || !RESERVED_AFTER_TABLE.has(a.value)))
      aliases.set(a.value, t.value);
  }
  return aliases;
}

const RESERVED_AFTER_TABLE = new Set([
  "where",
  "join",
  "inner",
  "left",
  "right",
  "full",
  "cross",
  "natural",
  "outer",
  "on",
  "using",
  "group",
  "order",
  "limit",
  "union",
  "except",
  "intersect",
  "having",
  "window",
  "as",
  "indexed",
  "not",
]);

/** Where the values of a required column can come from. */
export type ConstraintSource =
  | { kind: "equals"; value: string }
  | { kind: "like"; pattern: string }
  | { kind: "column"; table: string; column: string; prefix: string; suffix: string };

export interface RequiredConstraints {
  path: ConstraintSource[];
  directory: ConstraintSource[];
}

/**
 * Constraints on `path` and `directory` of `table` (any alias of it, or
 * unqualified): `= 'lit'`, `'lit' =`, `IN ('a', …)`, `LIKE 'pat'`,
 * `= other.col [|| 'suffix']`, `IN (SELECT col FROM other …)`, and
 * `JOIN table USING (path)`.
 */
export function requiredConstraints(
  tokens: Token[],
  table: string,
  aliases: Map<string, string>,
): RequiredConstraints {
  const out: RequiredConstraints = { path: [], directory: [] };
  const columnRef = (i: number): { column: string; qualifier?: string; end: number } | undefined => {
    const t = tokens[i];
    if (t?.kind !== "ident") return undefined;
    if (isOp(tokens[i + 1], ".") && tokens[i + 2]?.kind === "ident")
      return { column: tokens[i + 2]!.value, qualifier: t.value, end: i + 3 };
    if (isOp(tokens[i - 1], ".")) return undefined;
    return { column: t.value, end: i + 1 };
  };
  const isOurs = (ref: { column: string; qualifier?: string }) =>
    (ref.column === "path" || ref.column === "directory") &&
    (ref.qualifier === undefined || aliases.get(ref.qualifier) === table);
  const otherColumn = (i: number) => {
    const ref = columnRef(i);
    if (!ref) return undefined;
    const other = ref.qualifier ? aliases.get(ref.qualifier) : undefined;
    if (!other || other === table) return undefined;
    return { table: other, column: ref.column, end: ref.end };
  };
  // `[ 'prefix' || ] other.col [ || 'suffix' ]` starting at i.
  const columnExpr = (i: number): ConstraintSource | undefined => {
    let prefix = "";
    let j = i;
    if (tokens[j]?.kind === "string" && isOp(tokens[j + 1], "||")) {
      prefix = tokens[j]!.value;
      j += 2;
    }
    const o = otherColumn(j);
    if (!o) return undefined;
    let suffix = "";
    if (isOp(tokens[o.end], "||") && tokens[o.end + 1]?.kind === "string") suffix = tokens[o.end + 1]!.value;
    return { kind: "column", table: o.table, column: o.column, prefix, suffix };
  };

  for (let i = 0; i < tokens.length; i++) {
    // JOIN table [alias] USING (path)
    if (isWord(tokens[i], "using") && isOp(tokens[i + 1], "(")) {
      const joined = findJoinedTable(tokens, i, aliases);
      if (joined === table) {
        for (let j = i + 2; j < tokens.length && !isOp(tokens[j], ")"); j++) {
          const c = tokens[j];
          if (c?.kind === "ident" && (c.value === "path" || c.value === "directory")) {
            for (const [alias, t] of aliases)
              if (alias === t && t !== table)
                out[c.value].push({ kind: "column", table: t, column: c.value, prefix: "", suffix: "" });
          }
        }
      }
      continue;
    }
    const ref = columnRef(i);
    if (!ref) {
      // 'lit' = path
      const t = tokens[i];
      if (t?.kind === "string" && (isOp(tokens[i + 1], "=") || isOp(tokens[i + 1], "=="))) {
        const r = columnRef(i + 2);
        if (r && isOurs(r) && !isOp(tokens[r.end], "||"))
          out[r.column as "path" | "directory"].push({ kind: "equals", value: t.value });
      }
      continue;
    }
    if (!isOurs(ref)) continue;
    const col = ref.column as "path" | "directory";
    const op = tokens[ref.end];
    const next = ref.end + 1;
    if (isOp(op, "=") || isOp(op, "==")) {
      const v = tokens[next];
      if (v?.kind === "string" && !isOp(tokens[next + 1], "||"))
        out[col].push({ kind: "equals", value: v.value });
      else {
        const c = columnExpr(next);
        if (c) out[col].push(c);
        // other.col = path is found when the scan reaches `other.col`; handled below.
      }
    } else if (isWord(op, "like") || isWord(op, "glob")) {
      const v = tokens[next];
      if (v?.kind === "string")
        out[col].push({ kind: "like", pattern: isWord(op, "glob") ? globToLike(v.value) : v.value });
    } else if (isWord(op, "in") && isOp(tokens[next], "(")) {
      if (isWord(tokens[next + 1], "select")) {
        const sub = subqueryColumn(tokens, next + 1);
        if (sub && sub.table !== table) out[col].push({ kind: "column", ...sub, prefix: "", suffix: "" });
      } else {
        for (let j = next + 1; j < tokens.length && !isOp(tokens[j], ")"); j++) {
          const v = tokens[j]!;
          if (v.kind === "string") out[col].push({ kind: "equals", value: v.value });
        }
      }
    }
  }
  // other.col = path (the reverse of `path = other.col`).
  for (let i = 0; i < tokens.length; i++) {
    const o = otherColumn(i);
    if (!o) continue;
    if (!(isOp(tokens[o.end], "=") || isOp(tokens[o.end], "=="))) continue;
    const r = columnRef(o.end + 1);
    if (r && isOurs(r) && !isOp(tokens[r.end], "||"))
      out[r.column as "path" | "directory"].push({
        kind: "column",
        table: o.table,
        column: o.column,
        prefix: "",
        suffix: "",
      });
  }
  return out;
}

function findJoinedTable(
  tokens: Token[],
  usingIndex: number,
  aliases: Map<string, string>,
): string | undefined {
  // The table right before USING: `JOIN hash h USING (path)` or `JOIN hash USING (path)`.
  for (let j = usingIndex - 1; j >= 0 && j >= usingIndex - 3; j--) {
    const t = tokens[j];
    if (t?.kind === "ident" && aliases.has(t.value)) return aliases.get(t.value);
  }
  return undefined;
}

/** `SELECT [DISTINCT] [q.]col FROM table …` starting at the SELECT token. */
function subqueryColumn(tokens: Token[], selectIndex: number): { table: string; column: string } | undefined {
  let j = selectIndex + 1;
  if (isWord(tokens[j], "distinct")) j++;
  let column: string | undefined;
  if (tokens[j]?.kind === "ident" && isOp(tokens[j + 1], ".") && tokens[j + 2]?.kind === "ident") {
    column = tokens[j + 2]!.value;
    j += 3;
  } else if (tokens[j]?.kind === "ident") {
    column = tokens[j]!.value;
    j += 1;
  }
  if (!column || !isWord(tokens[j], "from") || tokens[j + 1]?.kind !== "ident") return undefined;
  return { table: tokens[j + 1]!.value, column };
}

/** GLOB → LIKE for path enumeration (`*` → `%`, `?` → `_`). */
function globToLike(glob: string): string {
  return glob.replace(/\*\*/g, "%%").replace(/\*/g, "%").replace(/\?/g, "_");
}
