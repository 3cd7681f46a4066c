/** `agent content list|rollback|ack`: installed content, online or offline. */
import { defineCommand } from "citty";
import ack from "./content-ack.ts";
import list from "./content-list.ts";
import rollback from "./content-rollback.ts";

export default defineCommand({
  meta: {
    name: "content",
    description: "List installed content, roll a type back to last-known-good, acknowledge a rollback",
  },
  subCommands: { list, rollback, ack },
});
