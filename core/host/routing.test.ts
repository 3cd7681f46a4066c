import { describe, expect, test } from "bun:test";
import { HandlerManifestSchema } from "../handler/contract.ts";
import { defineGroup } from "./policy.ts";
import type { GroupRec, ManagerContext, TypeSlot } from "./records.ts";
import { HostRouter } from "./routing.ts";

const query = defineGroup({
  name: "query",
  description: "t",
  runAs: "root",
  fs: { read: ["/**"] },
  net: "none",
  exec: true,
  hostView: true,
});
const plain = defineGroup({ name: "plain", description: "t", runAs: "agent", net: "none", exec: false });

const slot = (type: string, group: string, hostView: boolean): TypeSlot => ({
  type,
  group,
  host: group,
  state: "loaded",
  version: 1,
  manifest: HandlerManifestSchema.parse({
    name: type,
    description: "t",
    group,
    privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false, hostView },
  }),
});

function router() {
  const slots = new Map<string, TypeSlot>([
    ["Q", slot("Q", "query", true)],
    ["Undeclared", slot("Undeclared", "query", false)],
    ["P", slot("P", "plain", true)],
  ]);
  return new HostRouter({ slots, opts: {}, now: () => 0 } as unknown as ManagerContext);
}
const rec = (policy: typeof query) => ({ name: policy.name, policy }) as unknown as GroupRec;
describe("hostView requests from a host (the supervisor checks again)", () => {
  test("a declaring handler in an allowing group gets the view", async () => {
    const v = (await router().hostRequest(rec(query), "hostView", {
      handler: "Q",
      req: { parts: ["links"] },
    })) as {
      procs: Record<string, { cwd?: string }>;
    };
    expect(v.procs[String(process.pid)]?.cwd).toBe(process.cwd());
  });

  test("refused: undeclared handler, another group's handler, a group without the allowance, bad requests", async () => {
    const r = router();
    const ask = (g: GroupRec, args: unknown) =>
      r.hostRequest(g, "hostView", args).then(
        () => "none",
        (e) => (e as { code: string }).code,
      );
    expect(await ask(rec(query), { handler: "Undeclared", req: { parts: ["links"] } })).toBe(
      "HND_AGENT_DENIED",
    );
    expect(await ask(rec(query), { handler: "P", req: { parts: ["links"] } })).toBe("HND_AGENT_DENIED");
    expect(await ask(rec(plain), { handler: "P", req: { parts: ["links"] } })).toBe("HND_AGENT_DENIED");
    expect(await ask(rec(query), { handler: "Q", req: { parts: ["memory"] } })).toBe("HND_IPC_PROTOCOL");
    expect(await ask(rec(query), { handler: "Q", req: { parts: ["links"] }, extra: 1 })).toBe(
      "HND_IPC_PROTOCOL",
    );
  });
});
