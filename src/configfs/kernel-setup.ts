// Getting the target stack ready the way the seed's target-export-device script does, but only
// when something is missing: modules loaded, configfs mounted, a fabric's directory created
// (mkdir target/<fabric> makes the target core register the fabric module).
import { join } from "node:path";
import type { SystemRoots } from "../uio/discover.ts";
import { ConfigfsError, type ConfigfsIo } from "./io.ts";
import { missingModuleHint } from "./module-hint.ts";

/** How modules get loaded and configfs mounted; tests substitute a recorder. */
export interface KernelSetup {
  modprobe(module: string): void;
  mountConfigfs(path: string): void;
  /** Why `module` is missing and how to get it (module-hint.ts). */
  hint(module: string): string;
}

export const SYSTEM_KERNEL_SETUP: KernelSetup = {
  modprobe: (module) => {
    // A failure is judged by what appears afterwards: a module may be built in.
    Bun.spawnSync(["modprobe", module], { stdout: "ignore", stderr: "ignore" });
  },
  mountConfigfs: (path) => {
    Bun.spawnSync(["mount", "-t", "configfs", "configfs", path], { stdout: "ignore", stderr: "ignore" });
  },
  hint: (module) => missingModuleHint(module),
};

export type Fabric = "loopback" | "iscsi";

const FABRIC_MODULES: Record<Fabric, string> = { loopback: "tcm_loop", iscsi: "iscsi_target_mod" };

function moduleLoaded(roots: SystemRoots, io: ConfigfsIo, module: string): Promise<boolean> {
  return io.exists(join(roots.sysfs, "module", module));
}

/** configfs mounted, target_core_mod and target_core_user loaded: target/core exists. */
export async function ensureTargetCore(roots: SystemRoots, io: ConfigfsIo, setup: KernelSetup): Promise<void> {
  const core = join(roots.configfs, "target", "core");
  if (!(await io.exists(join(roots.configfs, "target")))) {
    if (!(await moduleLoaded(roots, io, "configfs"))) setup.modprobe("configfs");
    if (!(await io.exists(join(roots.configfs, "target")))) setup.mountConfigfs(roots.configfs);
    if (!(await moduleLoaded(roots, io, "target_core_mod"))) setup.modprobe("target_core_mod");
  }
  if (!(await moduleLoaded(roots, io, "target_core_user"))) setup.modprobe("target_core_user");
  if (!(await io.exists(core))) {
    const missing = (await moduleLoaded(roots, io, "target_core_mod")) ? "configfs" : "target_core_mod";
    throw new ConfigfsError(`${core} does not exist after loading target_core_mod and mounting configfs at ${roots.configfs}: ${setup.hint(missing)}`);
  }
  if (!(await moduleLoaded(roots, io, "target_core_user"))) throw new ConfigfsError(`no TCMU support: ${setup.hint("target_core_user")}`);
}

/** The fabric's configfs directory, created (and its module loaded) when missing. */
export async function ensureFabric(roots: SystemRoots, io: ConfigfsIo, setup: KernelSetup, fabric: Fabric): Promise<string> {
  const dir = join(roots.configfs, "target", fabric);
  if (await io.exists(dir)) return dir;
  const module = FABRIC_MODULES[fabric];
  if (!(await moduleLoaded(roots, io, module))) setup.modprobe(module);
  try {
    await io.makeDirectory(dir);
  } catch (error) {
    if (await moduleLoaded(roots, io, module)) throw error;
    throw new ConfigfsError(`no ${fabric} fabric (${dir}): ${setup.hint(module)}`);
  }
  return dir;
}
