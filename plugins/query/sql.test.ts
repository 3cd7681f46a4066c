import { describe, expect, test } from "bun:test";
import {
  checkStatement,
  namedIdentifiers,
  requiredConstraints,
  selectsStar,
  tableAliases,
  tokenize,
} from "./sql.ts";

const tokens = (sql: string) => {
  const c = checkStatement(sql);
  if (!c.ok) throw new Error(c.reason);
  return c.tokens;
};

describe("tokenize", () => {
  test("strings, quoted identifiers, comments and operators", () => {
    const t = tokenize(`SELECT "Path", 'it''s' || x -- comment\n FROM [file] /* c */ WHERE a<>b`);
    expect(t.map((x) => `${x.kind}:${x.value}`)).toEqual([
      "ident:select",
      "ident:path",
      "op:,",
      "string:it's",
      "op:||",
      "ident:x",
      "ident:from",
      "ident:file",
      "ident:where",
      "ident:a",
      "op:<>",
      "ident:b",
    ]);
  });

  test("an unterminated string is a lexing error", () => {
    expect(() => tokenize("select 'abc")).toThrow("unterminated string");
  });
});

describe("checkStatement", () => {
  test.each([
    ["select 1;", true],
    ["WITH x AS (SELECT 1) SELECT replace('a', 'a', 'b') FROM x", true],
    ["values (1)", true],
    ["select 1; drop table users", false],
    ["ATTACH DATABASE '/tmp/x' AS y", false],
    ["pragma writable_schema = 1", false],
    ["with x as (select 1) insert into t select * from x", false],
    ["vacuum into '/tmp/x'", false],
    ["", false],
  ])("%s → %p", (sql, ok) => {
    expect(checkStatement(sql).ok).toBe(ok);
  });

  test("refused statements and syntax errors are told apart", () => {
    const refused = checkStatement("delete from users");
    const syntax = checkStatement("selec 1");
    expect(!refused.ok && refused.kind).toBe("refused");
    expect(!syntax.ok && syntax.kind).toBe("syntax");
  });
});

describe("column use", () => {
  test("star selection, but not count(*) or multiplication", () => {
    expect(selectsStar(tokens("select * from processes"))).toBe(true);
    expect(selectsStar(tokens("select p.* from processes p"))).toBe(true);
    expect(selectsStar(tokens("select count(*) from processes"))).toBe(false);
    expect(selectsStar(tokens("select pid * 2 from processes"))).toBe(false);
  });

  test("named identifiers", () => {
    expect(namedIdentifiers(tokens("select pid, name from processes where uid = 0"))).toEqual(
      new Set(["select", "pid", "name", "from", "processes", "where", "uid"]),
    );
  });
});

describe("requiredConstraints", () => {
  const tables = new Set(["file", "hash", "processes", "users"]);
  const of = (sql: string, table = "file") => {
    const t = tokens(sql);
    return requiredConstraints(t, table, tableAliases(t, tables));
  };

  test("equality, reversed equality, IN lists and LIKE", () => {
    const c = of(
      "select * from file where path = '/etc/passwd' or '/etc/group' = path or path in ('/a', '/b') or path like '/tmp/%'",
    );
    expect(c.path).toEqual([
      { kind: "equals", value: "/etc/passwd" },
      { kind: "equals", value: "/etc/group" },
      { kind: "equals", value: "/a" },
      { kind: "equals", value: "/b" },
      { kind: "like", pattern: "/tmp/%" },
    ]);
  });

  test("directory constraints and aliases", () => {
    const c = of("select f.filename from file AS f where f.directory = '/etc'");
    expect(c.directory).toEqual([{ kind: "equals", value: "/etc" }]);
  });

  test("joins and subqueries name the other table's column", () => {
    expect(of("select * from processes p join hash h on h.path = p.path", "hash").path).toEqual([
      { kind: "column", table: "processes", column: "path", prefix: "", suffix: "" },
    ]);
    expect(of("select * from processes p, hash h where p.path = h.path", "hash").path).toEqual([
      { kind: "column", table: "processes", column: "path", prefix: "", suffix: "" },
    ]);
    expect(of("select * from hash where path in (select path from processes)", "hash").path).toEqual([
      { kind: "column", table: "processes", column: "path", prefix: "", suffix: "" },
    ]);
    expect(of("select * from users u join file f on f.path = u.directory || '/.bashrc'").path).toEqual([
      { kind: "column", table: "users", column: "directory", prefix: "", suffix: "/.bashrc" },
    ]);
  });

  test("another table's path column is not ours", () => {
    expect(of("select * from processes, file where processes.path = '/bin/sh'").path).toEqual([]);
  });
});
