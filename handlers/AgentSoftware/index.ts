/**
 * AgentSoftware: the agent's own executable, delivered like content —
 * signed, published to staged groups, verified by the update client. The
 * handler proves the package (format.ts, SW1–SW4) in the `software` group,
 * which needs nothing: no file system, no network, no exec. Switching to the
 * new build is the supervisor's (core/install/software-service.ts): it
 * stages the executable into the idle A/B slot, flips, and keeps the build
 * only if it proves healthy in time (docs/install.md, "Software updates").
 */
import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import {
  AGENT_FILE,
  AGENT_HEAD_BYTES,
  checkSoftware,
  hostPlatform,
  type SoftwareDescriptor,
} from "./format.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

interface SoftwareLive {
  version: number;
  descriptor: SoftwareDescriptor;
  bytes: number;
}

function parse(view: ContentView): { descriptor: SoftwareDescriptor; bytes: number } {
  // The executable is declared headOnly (manifest.ts): its header and size are all SW2–SW4 need.
  const r = checkSoftware(
    (p) =>
      !view.files.includes(p) ? undefined : p === AGENT_FILE ? view.head(p, AGENT_HEAD_BYTES) : view.read(p),
    hostPlatform(),
    (p) => view.size(p),
  );
  if (!r.ok) {
    throw new HandlerError(
      "HND_SOFTWARE_INVALID",
      `AgentSoftware v${view.version}: ${r.file}: ${r.reason} (${r.rule})`,
      { file: r.file, details: { rule: r.rule, reason: r.reason } },
    );
  }
  return { descriptor: r.descriptor, bytes: r.bytes };
}

export const agentSoftwareHandler = defineParsedHandler<SoftwareLive>({
  manifest: parsedManifest(),

  validate(view) {
    parse(view);
  },

  load(view, caps) {
    const { descriptor, bytes } = parse(view);
    caps.log.info("agent software content loaded", { version: view.version, software: descriptor.version });
    return { version: view.version, descriptor, bytes };
  },

  status(live) {
    return {
      softwareVersion: live.descriptor.version,
      platform: live.descriptor.platform,
      bytes: live.bytes,
    };
  },

  call(live, method) {
    if (method === "descriptor") return { contentVersion: live.version, ...live.descriptor };
    throw new HandlerError("HND_NO_METHOD", `AgentSoftware has no method ${method} (try: descriptor)`);
  },
});

export default agentSoftwareHandler;
