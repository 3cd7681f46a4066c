/**
 * Item 6 of issue 11: the results service belongs to the agent it was
 * started for. Two agents in one process (as in the test suite) each reach
 * their own service through their own routes — never the one another agent
 * started last — and a stopped service is gone from its agent.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../core/config.ts";
import { HandlerError } from "../../core/errors.ts";
import { resultsServiceOf } from "./service.ts";
import { queryServices } from "./wiring.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-query-wiring-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An agent whose query host has nothing installed: every pull is refused, the service keeps waiting. */
function fakeAgent() {
  return {
    call: async () => {
      throw new HandlerError("HND_NOT_LOADED", "ScheduledQueryPack has no content loaded");
    },
  };
}

test("each agent reaches the results service started for it, and only while it runs", async () => {
  const a = fakeAgent();
  const b = fakeAgent();
  const configFor = (name: string) =>
    parseConfig({
      stateDir: join(root, name),
      query: { hostIdentifier: name, results: { flushSeconds: 60 } },
    });
  const [sa] = queryServices({ api: a, config: configFor("a") });
  const [sb] = queryServices({ api: b, config: configFor("b") });
  expect(resultsServiceOf(a)).toBeUndefined();
  sa!.start();
  sb!.start();
  const ra = resultsServiceOf(a);
  const rb = resultsServiceOf(b);
  expect(ra).toBeDefined();
  expect(rb).toBeDefined();
  expect(ra).not.toBe(rb);
  await sb!.stop();
  expect(resultsServiceOf(b)).toBeUndefined();
  expect(resultsServiceOf(a)).toBe(ra);
  await sa!.stop();
  expect(resultsServiceOf(a)).toBeUndefined();
}, 20_000);
