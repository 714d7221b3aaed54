// The backstore factory for callers holding a dev_config string: parse it
// (src/config/dev-config.ts), then open it (open-store.ts).
import { parseDevConfig } from "../src/config/dev-config.ts";
import type { Backstore } from "./types.ts";
import { openStore, type BackstoreContext } from "./open-store.ts";

/** Opens the store `devConfigPath` names. Throws DevConfigError or BackstoreOpenError. */
export async function openBackstore(devConfigPath: string, context: BackstoreContext): Promise<Backstore> {
  return openStore(devConfigPath, parseDevConfig(devConfigPath), context);
}

export type { BackstoreContext } from "./open-store.ts";
export { DevConfigError, parseDevConfig, type DevConfig } from "../src/config/dev-config.ts";
