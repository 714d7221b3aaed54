// What to tell an administrator whose kernel lacks a target module: whether the running kernel
// ships it at all (modules.dep knows), and which package brings it on the common distributions.
import { readFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";

/** Where each mainstream distribution keeps the LIO target modules of its stock kernel. */
const PACKAGE_HINT =
  "Debian: linux-image-$(uname -r); Ubuntu: linux-modules-extra-$(uname -r); Fedora, RHEL, CentOS Stream: kernel-modules-extra; " +
  "SUSE: kernel-default; or a kernel built with CONFIG_TARGET_CORE, CONFIG_TCM_USER2 and CONFIG_LOOPBACK_TARGET";

/**
 * Whether `/lib/modules/<release>/modules.dep` lists `module` (undefined: no modules.dep to ask,
 * e.g. a kernel without loadable modules or a container without /lib/modules).
 */
export function kernelShipsModule(module: string, kernelRelease = release(), modulesRoot = "/lib/modules"): boolean | undefined {
  let dep: string;
  try {
    dep = readFileSync(join(modulesRoot, kernelRelease, "modules.dep"), "utf8");
  } catch {
    return undefined;
  }
  // Entries look like "kernel/drivers/target/target_core_user.ko.xz: deps…"; '-' and '_' are one.
  const wanted = module.replaceAll("-", "_");
  return dep.split("\n").some((line) => {
    const path = line.slice(0, line.indexOf(":"));
    const file = path.slice(path.lastIndexOf("/") + 1).replaceAll("-", "_");
    return file === `${wanted}.ko` || file.startsWith(`${wanted}.ko.`);
  });
}

/** One sentence: why `module` is missing and what to do about it. */
export function missingModuleHint(module: string, kernelRelease = release(), modulesRoot = "/lib/modules"): string {
  const ships = kernelShipsModule(module, kernelRelease, modulesRoot);
  if (ships === true) return `${module} could not be loaded: run \`modprobe ${module}\` as root and see its error (dmesg)`;
  const why = ships === false ? `kernel ${kernelRelease} has no ${module} module installed` : `${module} is not loaded and kernel ${kernelRelease} has no modules.dep to find it in`;
  return `${why}: install the package that brings it (${PACKAGE_HINT}), then \`modprobe ${module}\``;
}
