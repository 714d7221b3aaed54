// `create` validates its flags with the config file's schema; errors name the flag to fix and
// nothing is created (these runs never reach configfs).
import { expect, test } from "bun:test";
import { join } from "node:path";
import { flagFor } from "../../src/cli/provisioning-args.ts";

const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");

function create(...args: string[]): { code: number; stderr: string } {
  const run = Bun.spawnSync([process.execPath, MAIN, "create", ...args, "--run-dir", "/nonexistent/run"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: run.exitCode, stderr: run.stderr.toString() };
}

test("flagFor() turns schema paths into the flags to fix", () => {
  expect(flagFor(["size"])).toBe("--size");
  expect(flagFor(["block_size"])).toBe("--block-size");
  expect(flagFor(["exports", 0, "chap_password"])).toBe("--chap-password");
  expect(flagFor(["exports", 0, "initiators", 1])).toBe("--initiator");
  expect(flagFor(["exports", 0, "fabric"])).toBe("--export");
  expect(flagFor(["backstore"])).toBe("CONFIG");
});

test("create names the flag whose value is wrong", () => {
  const size = create("d0", "ram", "--size", "64X");
  expect(size.code).toBe(1);
  expect(size.stderr).toContain('create: --size: "64X" is not a size');
  const backstore = create("d0", "tape", "--size", "64M");
  expect(backstore.stderr).toContain('create: CONFIG: dev_config "tape": backstore "tape": unknown');
  const fabric = create("d0", "ram", "--size", "64M", "--export", "fc");
  expect(fabric.stderr).toContain('create: --export: fabric must be "loop" or "iscsi"');
  const name = create("a/b", "ram", "--size", "64M");
  expect(name.stderr).toContain('create: NAME "a/b"');
});

test("an iSCSI export open to everyone needs --allow-anyone; CHAP secrets must be long enough", () => {
  const open = create("d0", "ram", "--size", "64M", "--export", "iscsi");
  expect(open.code).toBe(1);
  expect(open.stderr).toContain("create: --allow-anyone: an iSCSI export needs chap_user/chap_password, initiators, or allow_anyone = true");
  const short = create("d0", "ram", "--size", "64M", "--export", "iscsi", "--chap-user", "u", "--chap-password", "short");
  expect(short.stderr).toContain("create: --chap-password: chap_password must be at least 12 characters");
  const stray = create("d0", "ram", "--size", "64M", "--iqn", "iqn.2003-01.org.example:d0");
  expect(stray.stderr).toContain("need --export iscsi");
});
