// `create` validates its flags with the config file's schema; errors name the flag to fix and
// nothing is created (these runs never reach configfs).
import { expect, test } from "bun:test";
import { join } from "node:path";
import { flagFor, repeatedFlag } from "../../src/cli/provisioning-args.ts";

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
  expect(flagFor(["serial"])).toBe("--serial");
  expect(flagFor(["exports", 1, "alua", "id"])).toBe("--alua-id");
  expect(flagFor(["exports", 0, "alua", "group"])).toBe("--alua-group");
  expect(flagFor(["exports", 0, "alua", "state"])).toBe("--alua-state");
  expect(flagFor(["exports", 0, "alua"])).toBe("--alua-group");
  expect(flagFor(["alua_peers", 1, "id"])).toBe("--alua-peer");
  expect(flagFor(["alua_peers"])).toBe("--alua-peer");
});

test("repeatedFlag() collects every value of a flag given more than once, up to --", () => {
  expect(repeatedFlag(["d0", "--alua-peer", "gw-b:2", "--size", "1M", "--alua-peer=gw-c:3,gw-d:4", "--", "--alua-peer", "x"], "alua-peer")).toEqual(["gw-b:2", "gw-c:3,gw-d:4"]);
  expect(repeatedFlag(["--alua-peer"], "alua-peer")).toEqual([]);
  expect(repeatedFlag(["--alua-peers", "x"], "alua-peer")).toEqual([]);
});

test("create names the ALUA or serial flag whose value is wrong", () => {
  const base = ["d0", "ram", "--size", "64M", "--export", "loop"];
  expect(create(...base, "--alua-group", "gw-a", "--alua-id", "0").stderr).toContain("create: --alua-id: must be 1 to 65535");
  expect(create(...base, "--alua-group", "gw-a", "--alua-id", "1", "--alua-state", "active").stderr).toContain("create: --alua-state: must be one of active-optimized");
  expect(create(...base, "--alua-group", "default_tg_pt_gp", "--alua-id", "1").stderr).toContain("create: --alua-group: default_tg_pt_gp is the kernel's own group");
  expect(create(...base, "--alua-group", "gw-a").stderr).toContain("create: --alua-group needs --alua-id");
  expect(create(...base, "--alua-id", "1").stderr).toContain("need --alua-group");
  expect(create("d0", "ram", "--size", "64M", "--alua-group", "gw-a", "--alua-id", "1").stderr).toContain("--alua-group puts the exports' LUNs in a group: it needs --export");
  expect(create(...base, "--alua-group", "gw-a", "--alua-id", "1", "--alua-peer", "gw-b").stderr).toContain('create: --alua-peer "gw-b": expected GROUP:ID[:STATE]');
  expect(create(...base, "--alua-group", "gw-a", "--alua-id", "1", "--alua-peer", "gw-b:2", "--alua-peer", "gw-a:3").stderr).toContain(
    "create: --alua-peer: gw-a is this gateway's own group (exports[0]), not a peer's",
  );
  expect(create(...base, "--alua-group", "gw-a", "--alua-id", "1", "--alua-peer", "gw-b:2,gw-c:2:standby").stderr).toContain("create: --alua-peer: 2 is already the id of group gw-b");
  expect(create(...base, "--alua-peer", "gw-b:2").stderr).toContain("create: --alua-peer: needs an export with alua");
  expect(create(...base, "--serial", "has space").stderr).toContain("create: --serial: must be printable ASCII without spaces");
  expect(create(...base, "--serial", "x".repeat(254)).stderr).toContain("create: --serial: is longer than 253 characters");
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
