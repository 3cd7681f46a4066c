/** Test helpers for the appfeed handlers. Tests only. */
import { defineAppfeedHandler } from "./handler.ts";

/** A handler with APPFEED's manifest, for building capabilities in-process. */
export const appfeedHandlerForTest = defineAppfeedHandler({ type: "APPFEED", description: "test" });
