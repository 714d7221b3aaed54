// `tcmu-appliance bench`'s data-plane runs print their tables (numbers are for reading, not for
// asserting: benchmarks prove speed, tests prove they run and say what they measured).
import { expect, test } from "bun:test";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

function bench(...args: string[]): { code: number; output: string } {
  const result = Bun.spawnSync([process.execPath, MAIN, "bench", ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode, output: `${result.stdout.toString()}${result.stderr.toString()}` };
}

test("bench --isolation times a device alone and beside a stalled store on another worker", () => {
  const { code, output } = bench("--isolation", "--seconds", "0.3");
  expect(code).toBe(0);
  expect(output).toContain("alone");
  expect(output).toContain("beside a stalled store");
  expect(output).toMatch(/mean latency \d+\.\d\d, p50 \d+\.\d\d \(target ≤ 1\.10\); the stalled neighbour finished \d+ reads/);
}, 30_000);

test("bench --devices N --threads a,b reports one aggregate row per thread count", () => {
  const { code, output } = bench("--devices", "2", "--threads", "1,2", "--seconds", "0.3", "--qd", "4");
  expect(code).toBe(0);
  const rows = output.split("\n").filter((line) => /^\s+\d+\s+2\s+\d+/.test(line));
  expect(rows.map((row) => Number(row.trim().split(/\s+/)[0]))).toEqual([1, 2]);
}, 30_000);

test("bench refuses a bad thread list naming the flag", () => {
  const { code, output } = bench("--devices", "2", "--threads", "0");
  expect(code).toBe(2);
  expect(output).toContain("bench: --threads:");
});
