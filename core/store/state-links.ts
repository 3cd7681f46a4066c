/**
 * The agent never follows a symbolic link where its state directory has a
 * directory. Start-up cleans staging/, collects old versions and writes
 * pointers as root: a link at content/<Type>/staging or content/<Type>
 * would turn that cleanup and those writes onto whatever the link names.
 * Such a link is refused with STORE_SYMLINK, naming it and its target,
 * before anything is read or written; the administrator replaces it with a
 * real directory (or removes it). STATE itself may be a link: that is where
 * the administrator chose to put it.
 */
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "../errors.ts";

/** Throws STORE_SYMLINK when `dir` is a symbolic link; returns whether it exists. */
export function assertNotSymlink(dir: string): boolean {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
  if (st.isSymbolicLink()) {
    let target = "?";
    try {
      target = readlinkSync(dir);
    } catch {
      // The link is refused either way; its target is only for the message.
    }
    throw new StoreError(
      "STORE_SYMLINK",
      `${dir}: is a symbolic link (to ${target}); the agent does not follow links in its state directory — replace it with a real directory`,
      { file: dir },
    );
  }
  return st.isDirectory();
}

/** Every directory position under STATE the agent reads, writes or cleans, one level into each area. */
export function refuseStateSymlinks(stateDir: string): void {
  const content = join(stateDir, "content");
  if (assertNotSymlink(content)) {
    for (const type of readdirSync(content)) {
      const typeDir = join(content, type);
      if (!assertNotSymlink(typeDir)) continue;
      for (const sub of ["versions", "staging"]) {
        const dir = join(typeDir, sub);
        if (assertNotSymlink(dir)) for (const name of readdirSync(dir)) assertNotSymlink(join(dir, name));
      }
    }
  }
  for (const area of ["index-cache", "hosts", "update-spool"]) {
    const dir = join(stateDir, area);
    if (assertNotSymlink(dir)) for (const name of readdirSync(dir)) assertNotSymlink(join(dir, name));
  }
}
