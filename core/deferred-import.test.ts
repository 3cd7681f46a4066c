import { expect, test } from "bun:test";
import { deferredImport, deferredImportsSettled } from "./deferred-import.ts";

test("compiled: the module is loaded on first use, once", async () => {
  let loads = 0;
  const get = deferredImport(async () => ({ n: ++loads }), { compiled: true });
  await deferredImportsSettled();
  expect(loads).toBe(0);
  expect(await get()).toEqual({ n: 1 });
  expect(await get()).toEqual({ n: 1 });
  expect(loads).toBe(1);
});

test("from source: loading starts at once, and a host can wait for it before it locks its sandbox", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let done = false;
  const get = deferredImport(
    async () => {
      await gate;
      done = true;
      return "module";
    },
    { compiled: false },
  );
  const settled = deferredImportsSettled();
  expect(done).toBe(false);
  release();
  await settled;
  expect(done).toBe(true);
  expect(await get()).toBe("module");
});

test("a module that fails to load fails its first use with its own error, not the wait", async () => {
  const get = deferredImport(() => Promise.reject(new Error("no such module")), { compiled: false });
  await deferredImportsSettled();
  await expect(get()).rejects.toThrow("no such module");
});
