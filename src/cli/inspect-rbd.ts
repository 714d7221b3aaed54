// `tcmu-appliance inspect rbd/<pool>/<image>[;conf=…;id=…;ns=…]`: what the rbd backstore would
// serve — size, object size, features, snapshots — read through librbd like an attach would.
import { BackstoreOpenError } from "../../backstores/types.ts";
import { DevConfigError, parseDevConfig, type RbdDevConfig } from "../config/dev-config.ts";
import { formatBytes } from "./format.ts";

const EXIT_REFUSED = 1;

/** Prints the image; returns the exit status. */
export async function inspectRbd(configPath: string, json: boolean): Promise<number> {
  let config: RbdDevConfig;
  try {
    const parsed = parseDevConfig(configPath);
    if (parsed.kind !== "rbd") throw new DevConfigError(configPath, "backstore", "expected rbd/<pool>/<image>");
    config = parsed;
  } catch (error) {
    console.error(`inspect: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT_REFUSED;
  }
  const { RbdImage } = await import("../../backstores/rbd/rbd-image.ts");
  const { LibrbdMissingError } = await import("../../backstores/rbd/librbd-binding.ts");
  let image;
  try {
    image = await RbdImage.open({ ...config, readOnly: true });
  } catch (error) {
    if (!(error instanceof BackstoreOpenError || error instanceof LibrbdMissingError)) throw error;
    console.error(`inspect: ${error.message}`);
    return EXIT_REFUSED;
  }
  try {
    const info = {
      image: `${config.pool}/${config.namespace === undefined ? "" : `${config.namespace}/`}${config.image}`,
      sizeBytes: image.sizeBytes,
      objectSizeBytes: image.objectSizeBytes,
      features: image.features,
      snapshots: image.snapshots(),
    };
    if (json) {
      console.log(JSON.stringify(info, null, 2));
    } else {
      console.log(`image: rbd ${info.image}`);
      console.log(`size: ${formatBytes(info.sizeBytes)} (${info.sizeBytes} bytes)`);
      console.log(`object size: ${formatBytes(info.objectSizeBytes)}`);
      console.log(`features: ${info.features.join(", ") || "-"}`);
      if (info.snapshots.length > 0) {
        console.log("snapshots:");
        for (const snapshot of info.snapshots) console.log(`  ${snapshot.id}  ${snapshot.name}  ${formatBytes(snapshot.sizeBytes)}`);
      }
    }
    return 0;
  } finally {
    image.close();
  }
}
