/** `agent handlers call`: content handlers' APIs, online or offline. */
import { defineCommand } from "citty";
import call from "./handlers-call.ts";

export default defineCommand({
  meta: { name: "handlers", description: "Call content handlers' APIs" },
  subCommands: { call },
});
