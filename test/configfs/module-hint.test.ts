import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelShipsModule, missingModuleHint } from "../../src/configfs/module-hint.ts";

const root = mkdtempSync(join(tmpdir(), "tcmu-modules-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(join(root, "6.1.0-test"), { recursive: true });
writeFileSync(
  join(root, "6.1.0-test", "modules.dep"),
  "kernel/drivers/target/target_core_mod.ko.xz: kernel/lib/crc-t10dif.ko\nkernel/drivers/target/target_core_user.ko.xz: kernel/drivers/target/target_core_mod.ko.xz\n",
);

test("modules.dep decides whether the running kernel ships a module", () => {
  expect(kernelShipsModule("target_core_user", "6.1.0-test", root)).toBe(true);
  expect(kernelShipsModule("tcm_loop", "6.1.0-test", root)).toBe(false);
  expect(kernelShipsModule("tcm_loop", "no-such-release", root)).toBeUndefined();
});

test("the hint says to modprobe a shipped module, and names the packages for a missing one", () => {
  expect(missingModuleHint("target_core_user", "6.1.0-test", root)).toContain("modprobe target_core_user");
  const missing = missingModuleHint("tcm_loop", "6.1.0-test", root);
  expect(missing).toContain("kernel 6.1.0-test has no tcm_loop module installed");
  expect(missing).toContain("linux-modules-extra");
  expect(missing).toContain("kernel-modules-extra");
});
