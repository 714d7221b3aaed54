import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cachedDaemonFinder, describeDaemons, findOtherTcmuDaemons } from "../../src/configfs/other-daemons.ts";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function fakeProc(processes: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "tcmu-proc-"));
  roots.push(root);
  for (const [pid, comm] of Object.entries(processes)) {
    mkdirSync(join(root, pid));
    writeFileSync(join(root, pid, "comm"), `${comm}\n`);
  }
  mkdirSync(join(root, "self-like-entry"));
  return root;
}

test("finds tcmu-runner and qemu-tcmu among the processes, not this one or others", () => {
  const proc = fakeProc({ "1": "systemd", "812": "tcmu-runner", "900": "qemu-tcmu", [String(process.pid)]: "tcmu-runner", "1000": "tcmu-runner-x" });
  const found = findOtherTcmuDaemons(proc).sort((a, b) => a.pid - b.pid);
  expect(found).toEqual([
    { name: "tcmu-runner", pid: 812 },
    { name: "qemu-tcmu", pid: 900 },
  ]);
  expect(describeDaemons(found)).toBe("tcmu-runner (pid 812), qemu-tcmu (pid 900)");
});

test("a missing /proc finds nothing", () => {
  expect(findOtherTcmuDaemons("/nonexistent-proc")).toEqual([]);
});

test("the cached finder looks again only after its time to live", () => {
  let looks = 0;
  const finder = cachedDaemonFinder(() => {
    looks += 1;
    return [];
  }, 60_000);
  finder();
  finder();
  expect(looks).toBe(1);
  const uncached = cachedDaemonFinder(() => {
    looks += 1;
    return [];
  }, 0);
  uncached();
  uncached();
  expect(looks).toBe(3);
});
