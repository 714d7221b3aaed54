// `tcmu-appliance remove NAME`: undoes `create` (or a config file's device): exports first,
// then the device (serve drains and releases it on the REMOVED event, deleting a RAM store's
// memory). Refuses devices tcmu-appliance did not create.
import { defineCommand } from "citty";
import { unprovisionDevice } from "../configfs/provision.ts";
import { COMMON_ARGS, provisionerFrom } from "./provisioning-args.ts";
import { clearStaleReplySwitch } from "./stale-replies.ts";

export const removeCommand = defineCommand({
  meta: { name: "remove", description: "Remove a device tcmu-appliance created, with its exports" },
  args: {
    name: { type: "positional", description: "Device name", required: true },
    ...COMMON_ARGS,
  },
  async run({ args }) {
    const provisioner = provisionerFrom(args);
    clearStaleReplySwitch(provisioner.state.runDir);
    try {
      const record = await unprovisionDevice(provisioner, String(args.name));
      console.log(`removed ${record.name} (user_${record.hbaId}/${record.name}${record.exports.length > 0 ? " and its exports" : ""})`);
    } catch (error) {
      console.error(`remove: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    }
  },
});
