import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigfsError } from "../../src/configfs/io.ts";
import { CONFIGFS_IDLE_RETIRE_MS, ThreadConfigfsIo } from "../../src/configfs/thread-io.ts";

const root = mkdtempSync(join(tmpdir(), "tcmu-thread-io-"));
const io = new ThreadConfigfsIo();
afterAll(() => {
  io.close();
  rmSync(root, { recursive: true, force: true });
});

/** The promise's rejection reason (awaited by hand: a worker-settled rejection and expect().rejects hang in bun 1.4.5). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("the operation succeeded");
}

test("operations run in worker threads with configfs semantics (EEXIST/ENOENT tolerated where meant)", async () => {
  const dir = join(root, "a");
  await io.makeDirectory(dir);
  await io.makeDirectory(dir);
  await io.writeAttribute(join(dir, "enable"), 1);
  expect(readFileSync(join(dir, "enable"), "utf8")).toBe("1");
  expect(await io.readAttribute(join(dir, "enable"))).toBe("1");
  expect(await io.readAttribute(join(dir, "missing"))).toBeUndefined();
  await io.makeLink(dir, join(root, "link"));
  expect(await io.readLink(join(root, "link"))).toBe(dir);
  expect((await io.listEntries(root)).sort()).toEqual(["a", "link"]);
  expect(await io.exists(join(dir, "enable"))).toBe(true);
  await io.removeLink(join(root, "link"));
  await io.removeLink(join(root, "link"));
  expect(await rejection(io.removeDirectory(dir))).toBeInstanceOf(ConfigfsError);
  expect(String(await rejection(io.writeAttribute(join(root, "no", "such"), 1)))).toContain("ENOENT");
  expect(await io.listEntries(join(root, "nothing"))).toEqual([]);
});

test("an operation blocked in the kernel does not hold up the next one", async () => {
  // Opening a FIFO for writing blocks until a reader comes, like an enable waiting for serve.
  const fifo = join(root, "fifo");
  Bun.spawnSync(["mkfifo", fifo]);
  let blockedDone = false;
  const blocked = io.writeAttribute(fifo, 1).then(() => (blockedDone = true));
  await Bun.sleep(50);
  expect(await io.readAttribute(join(root, "a", "enable"))).toBe("1");
  expect(blockedDone).toBe(false);
  const reader = Bun.spawn(["cat", fifo], { stdout: "pipe" });
  await blocked;
  expect(await new Response(reader.stdout).text()).toBe("1");
});

/** Three writers blocked at once (three threads), then let through: the pool after a burst. */
async function burstOfThree(pool: ThreadConfigfsIo, name: string): Promise<void> {
  const fifos = [0, 1, 2].map((index) => join(root, `${name}-fifo-${index}`));
  for (const fifo of fifos) Bun.spawnSync(["mkfifo", fifo]);
  const blocked = fifos.map((fifo) => pool.writeAttribute(fifo, 1));
  await Bun.sleep(50);
  expect(pool.threadCount).toBe(3);
  const readers = fifos.map((fifo) => Bun.spawn(["cat", fifo], { stdout: "pipe" }));
  await Promise.all(blocked);
  for (const reader of readers) await reader.exited;
}

test("the threads a burst of blocked operations grew all end once the burst is over, and the next operation starts one again", async () => {
  const burst = new ThreadConfigfsIo();
  try {
    await burstOfThree(burst, "burst");
    await Bun.sleep(CONFIGFS_IDLE_RETIRE_MS + 300);
    expect(burst.threadCount).toBe(0);
    expect(await burst.readAttribute(join(root, "a", "enable"))).toBe("1");
    expect(burst.threadCount).toBe(1);
  } finally {
    burst.close();
  }
});

test("a steady trickle of work after a burst (the ALUA watch after an attach) does not keep the burst's threads alive", async () => {
  const burst = new ThreadConfigfsIo();
  try {
    await burstOfThree(burst, "trickle");
    // One read every 250 ms, well inside the retire time, for longer than it.
    const trickleUntil = performance.now() + CONFIGFS_IDLE_RETIRE_MS + 1000;
    while (performance.now() < trickleUntil) {
      expect(await burst.readAttribute(join(root, "a", "enable"))).toBe("1");
      await Bun.sleep(250);
    }
    // The one the trickle keeps busy, not the burst's three.
    expect(burst.threadCount).toBe(1);
  } finally {
    burst.close();
  }
});
