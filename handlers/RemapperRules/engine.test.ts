/**
 * The remapper's attacks and bad inputs, one test each (issue 15, "Bad
 * input"): every refusal has a code and names the file and line.
 */
import { expect, test } from "bun:test";
import { OutpostError } from "../../core/errors.ts";
import { convert } from "./convert.ts";
import { remap } from "./engine.ts";
import { parseRuleFile } from "./format.ts";
import { checkPolicyXml } from "./xml.ts";

const POLICY = `<?xml version="1.0"?>
<policy>
  <liveProtection enabled="true">
    <timeout>2s</timeout>
    <attempts>3</attempts>
  </liveProtection>
  <watchdog memoryMb="900"/>
</policy>
`;

const ruleFile = (rules: unknown[], document = "tp.xml") =>
  JSON.stringify({ schema: 1, document, rules }, null, 2);
const lookups = {
  id: "lp-on",
  select: "/policy/liveProtection/@enabled",
  convert: { fn: "bool" },
  target: "liveProtection.lookups",
};
const timeout = {
  id: "lp-timeout",
  select: "/policy/liveProtection/timeout",
  convert: { fn: "duration", unit: "ms", min: 50, max: 30000 },
  target: "liveProtection.timeoutMs",
};

function refusal(fn: () => unknown): { code: string; message: string; line?: unknown } {
  try {
    fn();
  } catch (e) {
    if (e instanceof OutpostError) return { code: e.code, message: e.message, line: e.details?.line };
    throw e;
  }
  throw new Error("expected a refusal");
}

test("a rule file maps policy values through its conversions, with the matched line", () => {
  const f = parseRuleFile(ruleFile([lookups, timeout]), "lp.json");
  const [r] = remap([f], [{ name: "tp.xml", xml: POLICY }]);
  expect(r).toEqual({
    file: "lp.json",
    ok: true,
    values: [
      { key: "liveProtection.lookups", value: true, rule: "lp-on", document: "tp.xml", line: 3 },
      { key: "liveProtection.timeoutMs", value: 2000, rule: "lp-timeout", document: "tp.xml", line: 4 },
    ],
  });
});

test("X3: malformed XML is refused naming the document and line; only the files reading it fail", () => {
  const bad = "<policy>\n  <liveProtection enabled='true'>\n</policy>\n";
  const a = parseRuleFile(ruleFile([lookups]), "a.json");
  const b = parseRuleFile(ruleFile([{ ...lookups, id: "x", select: "/other/@v" }], "other.xml"), "b.json");
  const [ra, rb] = remap(
    [a, b],
    [
      { name: "tp.xml", xml: bad },
      { name: "other.xml", xml: "<other v='off'/>" },
    ],
  );
  expect(ra).toMatchObject({ ok: false, error: { code: "POL_XML_MALFORMED", document: "tp.xml", line: 3 } });
  expect(rb).toMatchObject({ ok: true, values: [{ key: "liveProtection.lookups", value: false }] });
  expect(refusal(() => checkPolicyXml("tp.xml", bad)).message).toMatch(/^tp\.xml:3: not well-formed XML/);
});

test("X2: a document with a DOCTYPE or an entity declaration is refused before parsing", () => {
  const bomb = `<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n <!ENTITY lol2 "&lol;&lol;&lol;">\n]>\n<policy>&lol2;</policy>`;
  expect(refusal(() => checkPolicyXml("bomb.xml", bomb))).toMatchObject({ code: "POL_XML_DTD", line: 2 });
  const xxe = `<policy>\n<!ENTITY x SYSTEM "file:///etc/shadow">\n</policy>`;
  expect(refusal(() => checkPolicyXml("xxe.xml", xxe))).toMatchObject({ code: "POL_XML_DTD", line: 2 });
  const [r] = remap([parseRuleFile(ruleFile([lookups]), "a.json")], [{ name: "tp.xml", xml: bomb }]);
  expect(r).toMatchObject({ ok: false, error: { code: "POL_XML_DTD", line: 2 } });
});

test("an XPath that matches nothing fails the whole file (no partial output), naming rule and line", () => {
  const f = parseRuleFile(ruleFile([lookups, { ...timeout, select: "/policy/missing" }]), "lp.json");
  const [r] = remap([f], [{ name: "tp.xml", xml: POLICY }]);
  expect(r).toEqual({
    file: "lp.json",
    ok: false,
    error: {
      code: "POL_XPATH_NO_MATCH",
      message: 'lp.json:14: rule lp-timeout: "/policy/missing" matched nothing in tp.xml',
      rule: "lp-timeout",
      document: "tp.xml",
    },
  });
  const optional = parseRuleFile(
    ruleFile([lookups, { ...timeout, select: "/policy/missing", optional: true }]),
    "o.json",
  );
  expect(remap([optional], [{ name: "tp.xml", xml: POLICY }])[0]).toMatchObject({
    ok: true,
    values: [{ rule: "lp-on" }],
  });
});

test("a value out of range is refused naming the policy line and the rule", () => {
  const wd = {
    id: "wd",
    select: "/policy/watchdog/@memoryMb",
    convert: { fn: "int", min: 1, max: 512 },
    target: "query.watchdog.memoryMb",
  };
  const [r] = remap([parseRuleFile(ruleFile([wd]), "wd.json")], [{ name: "tp.xml", xml: POLICY }]);
  expect(r).toMatchObject({ ok: false, error: { code: "POL_VALUE_OUT_OF_RANGE", rule: "wd", line: 7 } });
  expect(r?.ok === false ? r.error.message : "").toMatch(
    /^tp\.xml:7: rule wd \(wd\.json:\d+\) → query\.watchdog\.memoryMb: 900 is outside 1\.\.512/,
  );
});

test("M3: a rule targeting a forbidden key is refused when the package is validated, naming file and line", () => {
  for (const target of ["update.trust", "update.repo", "control.port", "hosts.user", "fleet.url"]) {
    const text = ruleFile([lookups, { ...lookups, id: "evil", target }]);
    expect(refusal(() => parseRuleFile(text, "evil.json"))).toMatchObject({
      code: "POL_FORBIDDEN_KEY",
      line: 14,
    });
  }
  expect(refusal(() => parseRuleFile(ruleFile([{ ...lookups, target: "stateDirX" }]), "x.json")).code).toBe(
    "POL_KEY_NOT_ALLOWED",
  );
});

test("M1/M2: broken rule files are refused with the line: JSON syntax, schema, XPath syntax, unknown conversion", () => {
  expect(refusal(() => parseRuleFile('{\n  "schema": 1,\n  "rules": [ nope ]\n}', "s.json"))).toMatchObject({
    code: "POL_RULES_SYNTAX",
    line: 3,
  });
  expect(
    refusal(() => parseRuleFile(ruleFile([lookups, { ...timeout, convert: { fn: "eval" } }]), "c.json")),
  ).toMatchObject({
    code: "POL_RULES_INVALID",
    line: 14,
  });
  expect(
    refusal(() => parseRuleFile(ruleFile([{ ...lookups, select: "/policy/[" }]), "x.json")),
  ).toMatchObject({ code: "POL_BAD_XPATH", line: 6 });
  // XPath 1.0 has no document(); the library refuses it at evaluation, so the file fails then.
  const fetcher = parseRuleFile(ruleFile([{ ...lookups, select: "document('http://x')" }]), "x.json");
  expect(remap([fetcher], [{ name: "tp.xml", xml: POLICY }])[0]).toMatchObject({
    ok: false,
    error: { code: "POL_BAD_XPATH" },
  });
});

test("conversions: the closed set, each refusing what it does not understand", () => {
  expect(convert({ fn: "bool" }, ["Enabled"])).toBe(true);
  expect(() => convert({ fn: "bool" }, ["maybe"])).toThrow(/not a boolean/);
  expect(() => convert({ fn: "bool" }, ["true", "false"])).toThrow(/exactly one match/);
  expect(convert({ fn: "int", min: 0, max: 10 }, [" 7 "])).toBe(7);
  expect(() => convert({ fn: "int", min: 0, max: 10 }, ["7.5"])).toThrow(/not an integer/);
  expect(convert({ fn: "enum", map: { block: "block", report: "audit" } }, ["report"])).toBe("audit");
  expect(() => convert({ fn: "enum", map: { a: 1 } }, ["toString"])).toThrow(/not one of/);
  expect(convert({ fn: "duration", unit: "s" }, ["5m"])).toBe(300);
  expect(convert({ fn: "duration", unit: "ms" }, ["250"])).toBe(250);
  expect(() => convert({ fn: "duration", unit: "s", max: 60 }, ["2h"])).toThrow(/outside/);
  expect(convert({ fn: "list", separator: ";", item: "string", maxItems: 5 }, ["a; b;", "c"])).toEqual([
    "a",
    "b",
    "c",
  ]);
  expect(convert({ fn: "list", separator: ",", item: "path", maxItems: 5 }, ["/opt//x/,/tmp"])).toEqual([
    "/opt/x/",
    "/tmp",
  ]);
  expect(() => convert({ fn: "path" }, ["relative/x"])).toThrow(/not absolute/);
  expect(() => convert({ fn: "path" }, ["/opt/../etc"])).toThrow(/\.\./);
});

test("a missing document fails only the files that need it", () => {
  const [r] = remap(
    [parseRuleFile(ruleFile([lookups], "absent.xml"), "a.json")],
    [{ name: "tp.xml", xml: POLICY }],
  );
  expect(r).toMatchObject({ ok: false, error: { code: "POL_DOCUMENT_MISSING", document: "absent.xml" } });
});

test("node-sets come back in document order (the O(1) order index agrees with XPath's definition)", () => {
  const xml = "<policy>\n<a v='1'/><b><a v='2'/></b><a v='3'/>\n<c v='4'/></policy>";
  const rule = (select: string) =>
    parseRuleFile(
      JSON.stringify({
        schema: 1,
        document: "o.xml",
        rules: [{ id: "l", select, convert: { fn: "list", separator: "," }, target: "onAccess.items" }],
      }),
      "o.json",
    );
  const values = (select: string) => {
    const [r] = remap([rule(select)], [{ name: "o.xml", xml }]);
    return r?.ok ? r.values[0]?.value : r?.error;
  };
  expect(values("//a/@v")).toEqual(["1", "2", "3"]);
  expect(values("//c/@v | //a/@v")).toEqual(["1", "2", "3", "4"]);
  expect(values("(//a)[last()]/@v")).toEqual(["3"]);
});

test("X4: what only the DOM parser catches is refused with its line too", () => {
  const xml = "<?xml version='1.0'?>\n<policy>\n<!-- a -- b -->\n</policy>";
  const [r] = remap([parseRuleFile(ruleFile([lookups]), "a.json")], [{ name: "tp.xml", xml }]);
  expect(r).toMatchObject({ ok: false, error: { code: "POL_XML_MALFORMED", line: 3 } });
});
