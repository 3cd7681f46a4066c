import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AgentConfigSchema, parseConfig } from "./config.ts";
import { CONFIG_DEFAULTS_JSON } from "./config-defaults.generated.ts";
import { renderConfigDefaults } from "./config-defaults.ts";
import { ConfigError } from "./errors.ts";

/** What the whole schema makes of `input`: the reference parseConfig's section-by-section parse must match. */
function wholeSchema(input: unknown): { data?: unknown; error?: string } {
  const r = AgentConfigSchema.safeParse(input);
  if (r.success) return { data: r.data };
  const issue = r.error.issues[0]!;
  return { error: `<inline>: ${issue.path.join(".") || "(root)"}: ${issue.message}` };
}

function viaParseConfig(input: unknown): { data?: unknown; error?: string } {
  try {
    return { data: parseConfig(input) };
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe("CFG_INVALID");
    return { error: (e as Error).message };
  }
}

describe("config defaults (core/config-defaults.generated.ts)", () => {
  test("the generated file is what the schema says today (else: bun scripts/config-defaults.ts)", () => {
    const file = readFileSync(join(import.meta.dir, "config-defaults.generated.ts"), "utf8");
    expect(file).toBe(renderConfigDefaults());
  });

  test("the defaults survive JSON: nothing the schema outputs for an empty config is lost in the copy", () => {
    expect(JSON.parse(CONFIG_DEFAULTS_JSON)).toEqual(AgentConfigSchema.parse({}));
  });
});

describe("parseConfig builds only the sections it is given, with the whole schema's result", () => {
  const sections = Object.keys(AgentConfigSchema.shape);

  test("every section given as {} (or left out) parses as the whole schema parses it", () => {
    expect(viaParseConfig({})).toEqual(wholeSchema({}));
    for (const k of sections) {
      const input = k === "stateDir" ? { stateDir: "/srv/x" } : { [k]: {} };
      expect({ k, ...viaParseConfig(input) }).toEqual({ k, ...wholeSchema(input) });
    }
  });

  test("real settings in several sections, and an explicit undefined section", () => {
    const input = {
      stateDir: "/tmp/s",
      update: { repo: "http://127.0.0.1:9", intervalSeconds: 60 },
      hosts: { idleStop: { afterSeconds: 0 } },
      sensors: { files: { paths: ["/etc"] } },
      control: undefined,
    };
    const got = viaParseConfig(input);
    expect(got).toEqual(wholeSchema(input));
    expect((got.data as { update: { jitter: number } }).update.jitter).toBe(0.1);
  });

  test("every error is the whole schema's: a bad value, an unknown key at the top or in a section, not an object", () => {
    const bad: unknown[] = [
      { update: { intervalSeconds: 1 } },
      { update: { nope: 1 } },
      { nope: {} },
      { stateDir: "" },
      JSON.parse('{"__proto__": {"stateDir": "/x"}}'),
      [],
      "agent.json",
      null,
    ];
    for (const input of bad) {
      const got = viaParseConfig(input);
      expect(got.error).toBeDefined();
      expect(got).toEqual(wholeSchema(input));
    }
    // An object whose prototype is not Object's: the whole schema decides (it reads own keys only).
    const odd = Object.create({ stateDir: "/x" }) as object;
    expect(viaParseConfig(odd)).toEqual(wholeSchema(odd));
    expect(viaParseConfig({ update: { intervalSeconds: 1 } }).error).toMatch(
      /^<inline>: update\.intervalSeconds: /,
    );
  });

  test("each parse gets its own objects: changing one config leaves the next one's defaults alone", () => {
    const a = parseConfig({});
    (a.update as { repo: string }).repo = "changed";
    (a.sensors.files.paths as string[]).push("/changed");
    const b = parseConfig({});
    expect(b.update.repo).toBe("http://127.0.0.1:8080");
    expect(b.sensors.files.paths).toEqual([]);
  });
});
