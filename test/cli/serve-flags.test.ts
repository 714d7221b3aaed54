// serve's data-plane flags are validated before anything starts: a bad value exits 2 with a
// message naming the flag (and a bad TOML key names the key).
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

function serve(...args: string[]): { code: number; output: string } {
  const result = Bun.spawnSync([process.execPath, MAIN, "serve", "--run-dir", mkdtempSync(join(tmpdir(), "serve-flags-")), ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode, output: `${result.stdout.toString()}${result.stderr.toString()}` };
}

for (const [flag, value] of [["--data-plane-threads", "0"], ["--data-plane-threads", "two"], ["--poll-us", "-5"], ["--file-io", "fast"]] as const) {
  test(`serve ${flag} ${value} is refused naming the flag`, () => {
    const { code, output } = serve(flag, value);
    expect(code).toBe(2);
    expect(output).toContain(`serve: ${flag}:`);
  });
}

test("a bad [serve] data-plane key in the config file is refused naming the key", () => {
  const path = join(mkdtempSync(join(tmpdir(), "serve-flags-")), "t.toml");
  writeFileSync(path, "[serve]\npoll_us = 1000000\n");
  const { code, output } = serve("--config", path);
  expect(code).toBe(2);
  expect(output).toContain("poll_us");
});
