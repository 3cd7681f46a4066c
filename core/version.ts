/** Filled in by build.ts through --define; the fallbacks apply when running from source. */
declare const OUTPOST_VERSION: string | undefined;
declare const OUTPOST_COMMIT: string | undefined;

export const VERSION: string = typeof OUTPOST_VERSION === "string" ? OUTPOST_VERSION : "0.1.0-dev";
export const COMMIT: string = typeof OUTPOST_COMMIT === "string" ? OUTPOST_COMMIT : "source";
