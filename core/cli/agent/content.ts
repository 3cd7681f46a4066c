/** `agent content list|rollback`: installed content, online or offline. */
import { defineCommand } from "citty";
import list from "./content-list.ts";
import rollback from "./content-rollback.ts";

export default defineCommand({
  meta: { name: "content", description: "List installed content or roll a type back to last-known-good" },
  subCommands: { list, rollback },
});
