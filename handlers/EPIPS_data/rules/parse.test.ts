/** One test per refusal rule (E1–E9) and per accepted construct of the rule subset. */
import { describe, expect, test } from "bun:test";
import { addrMatches, ipBytes, parseAddrSet, parsePortSet, portMatches } from "./net.ts";
import { MAX_RULES, parseRule, parseRuleFiles, RuleError } from "./parse.ts";

const refuse = (text: string) => {
  try {
    parseRuleFiles([{ name: "x.rules", text }]);
  } catch (e) {
    if (e instanceof RuleError) return { rule: e.rule, line: e.line, sid: e.sid, message: e.message };
    throw e;
  }
  throw new Error("accepted");
};

describe("refusals name the file, line, sid and rule id", () => {
  test("E1: not a rule, unknown action or protocol", () => {
    expect(refuse("hello world")).toMatchObject({ rule: "E1", line: 1 });
    expect(refuse("reject tcp any any -> any any (sid:5;)")).toMatchObject({ rule: "E1", sid: 5 });
    expect(refuse("alert http any any -> any any (sid:6;)").message).toContain("protocol 'http'");
  });
  test("E2: missing sid, bad msg quoting", () => {
    expect(refuse('alert tcp any any -> any any (msg:"x";)')).toMatchObject({ rule: "E2" });
    expect(refuse("alert tcp any any -> any any (msg:x; sid:1;)")).toMatchObject({ rule: "E2", sid: 1 });
  });
  test("E3: content modifiers out of place", () => {
    expect(refuse("alert tcp any any -> any any (nocase; sid:1;)").message).toContain(
      "must follow a content",
    );
    expect(refuse('alert tcp any any -> any any (content:"a"; distance:1; sid:2;)').message).toContain(
      "previous content",
    );
    expect(refuse('alert tcp any any -> any any (content:"abcd"; depth:2; sid:3;)').message).toContain(
      "depth is shorter",
    );
    expect(refuse('alert tcp any any -> any any (content:"|4g|"; sid:4;)').message).toContain("bad hex");
  });
  test("E4: pcre that a linear-time engine cannot run, or unknown flags", () => {
    const back = refuse('alert tcp any any -> any any (pcre:"/(a)\\1/"; sid:7;)');
    expect(back).toMatchObject({ rule: "E4", sid: 7 });
    expect(refuse('alert tcp any any -> any any (pcre:"/(?=a)b/"; sid:8;)').rule).toBe("E4");
    expect(refuse('alert tcp any any -> any any (pcre:"/a/R"; sid:9;)').message).toContain("flag 'R'");
  });
  test("E5: variables and bad addresses or ports", () => {
    expect(refuse("alert tcp $HOME_NET any -> any any (sid:1;)").message).toContain("variable $HOME_NET");
    expect(refuse("alert tcp 10.0.0.300 any -> any any (sid:1;)").rule).toBe("E5");
    expect(refuse("alert tcp any 90:80 -> any any (sid:1;)").message).toContain("reversed");
  });
  test("E6: unknown flow option", () => {
    expect(refuse("alert tcp any any -> any any (flow:only_stream; sid:3;)")).toMatchObject({
      rule: "E6",
      sid: 3,
    });
  });
  test("E7: unsupported keyword, with its sid and line", () => {
    const r = refuse('# c\n\nalert tcp any any -> any any (content:"a"; byte_test:1,>,2,0; sid:42;)');
    expect(r).toMatchObject({ rule: "E7", line: 3, sid: 42 });
    expect(r.message).toContain("x.rules:3: sid 42: keyword 'byte_test' is not supported");
  });
  test("E8: duplicate sid", () => {
    expect(
      refuse("alert tcp any any -> any any (sid:1;)\nalert udp any any -> any any (sid:1;)"),
    ).toMatchObject({
      rule: "E8",
      line: 2,
    });
  });
  test("E9: more rules than the limit, counted across files (the default limit is 1,000,000)", () => {
    expect(MAX_RULES).toBe(1_000_000);
    const rules = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => `alert tcp any any -> any any (sid:${from + i};)`).join("\n");
    const files = [
      { name: "a.rules", text: rules(1, 3) },
      { name: "b.rules", text: rules(10, 2) },
    ];
    expect(parseRuleFiles(files, { maxRules: 5 }).rules).toHaveLength(5);
    try {
      parseRuleFiles(files, { maxRules: 4 });
      throw new Error("accepted");
    } catch (e) {
      expect(e).toBeInstanceOf(RuleError);
      expect(e).toMatchObject({ rule: "E9", line: 2, sid: 11 });
      expect((e as Error).message).toContain("b.rules:2: sid 11: more than 4 rules");
    }
  });
});

test("a full rule parses: lists, negation, content modifiers, pcre, flow, continuation lines", () => {
  const [r] = parseRuleFiles([
    {
      name: "a.rules",
      text:
        'drop tcp [10.0.0.0/8,!10.9.0.0/16] !22 -> any [80,8000:8100] (msg:"evil \\"get\\""; \\\n' +
        ' flow:to_server,established; content:"GET"; depth:3; content:"|2e 2e|/"; nocase; distance:0; within:64;' +
        ' pcre:"/passwd$/i"; classtype:attempted-recon; sid:100; rev:3;)',
    },
  ]).rules;
  expect(r).toMatchObject({ action: "drop", proto: "tcp", sid: 100, rev: 3, msg: 'evil "get"', line: 1 });
  expect(r!.flow).toEqual({ toServer: true, established: true });
  expect(
    r!.contents.map((c) => [Buffer.from(c.bytes).toString(), c.nocase, c.depth, c.distance, c.within]),
  ).toEqual([
    ["GET", false, 3, undefined, undefined],
    ["../", true, undefined, 0, 64],
  ]);
  expect(addrMatches(r!.src, ipBytes("10.1.2.3")!)).toBe(true);
  expect(addrMatches(r!.src, ipBytes("10.9.2.3")!)).toBe(false);
  expect(addrMatches(r!.src, ipBytes("11.0.0.1")!)).toBe(false);
  expect(portMatches(r!.srcPorts, 22)).toBe(false);
  expect(portMatches(r!.dstPorts, 8050)).toBe(true);
  expect(portMatches(r!.dstPorts, 81)).toBe(false);
});

test("address and port sets: nesting, only-negated lists, IPv6", () => {
  const a = parseAddrSet("[![192.168.0.0/16, 2001:db8::/32]]");
  expect(addrMatches(a, ipBytes("8.8.8.8")!)).toBe(true);
  expect(addrMatches(a, ipBytes("192.168.1.1")!)).toBe(false);
  expect(addrMatches(a, ipBytes("2001:db8::5")!)).toBe(false);
  expect(addrMatches(parseAddrSet("2001:db8::/32"), ipBytes("2001:db9::1")!)).toBe(false);
  const p = parsePortSet("[1024:, !8080]");
  expect(portMatches(p, 8080)).toBe(false);
  expect(portMatches(p, 9000)).toBe(true);
  expect(portMatches(p, 80)).toBe(false);
});

test("a catastrophic regex compiles in the linear-time engine and stays fast on a hostile input", () => {
  const r = parseRule('alert tcp any any -> any any (pcre:"/^(a+)+$/"; sid:1;)', "x.rules", 1);
  const input = `${"a".repeat(50_000)}!`;
  const t = performance.now();
  expect(r.pcres[0]!.re.test(input)).toBe(false);
  expect(performance.now() - t).toBeLessThan(2000);
});
