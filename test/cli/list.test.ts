// `list` shows each export's ALUA group and that group's state as configfs has them at list time.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listLines, type ListedDevice } from "../../src/cli/list.ts";
import { setAluaGroupState } from "../../src/configfs/alua-groups.ts";
import { readInventory } from "../../src/configfs/inventory.ts";
import { loopWwn } from "../../src/configfs/loop-export.ts";
import { deviceDir, provisionDevice, type Provisioner } from "../../src/configfs/provision.ts";
import { StateStore } from "../../src/configfs/state.ts";
import { PROVISIONING_HBA_ID } from "../../src/configfs/user-device.ts";
import { FakeConfigfs, RecordingSetup } from "../configfs/fake-configfs.ts";

let fake: FakeConfigfs;
let provisioner: Provisioner;
let runDir: string;

beforeEach(() => {
  fake = new FakeConfigfs();
  runDir = mkdtempSync(join(tmpdir(), "tcmu-run-"));
  provisioner = { roots: fake.roots, io: fake, setup: new RecordingSetup(fake.roots), state: new StateStore(runDir), subtype: "appliance", hbaId: PROVISIONING_HBA_ID, findOtherDaemons: () => [] };
});
afterEach(() => {
  fake.dispose();
  rmSync(runDir, { recursive: true, force: true });
});

async function listed(): Promise<ListedDevice[]> {
  return (await readInventory(fake.roots, fake)).map((entry) => ({ ...entry, state: "not served", owner: "tcmu-appliance (cli)", notes: [] }));
}

test("list shows each export's group with its id and current state, and the peers' groups in a note", async () => {
  const iscsi = { fabric: "iscsi" as const, iqn: "iqn.2003-01.org.example:d0", portal: "127.0.0.1:3260", initiators: [], allowAnyone: true, alua: { group: "gw-a", id: 1, state: "active-optimized" as const, preferred: false } };
  await provisionDevice(
    provisioner,
    {
      name: "d0",
      backstore: "ram",
      sizeBytes: 64 * 1024 ** 2,
      blockSizeBytes: 512,
      writeCache: false,
      hwMaxSectors: 1024,
      maxDataAreaMb: 64,
      cmdTimeOutSeconds: 30,
      exports: [{ fabric: "loop" }, iscsi],
      aluaPeers: [{ group: "gw-b", id: 2, state: "active-non-optimized", preferred: false }],
    },
    "cli",
  );
  let text = listLines(await listed()).join("\n");
  expect(text).toContain(`loop ${loopWwn("d0")} lun 0; iscsi iqn.2003-01.org.example:d0 lun 0 [gw-a id 1 active-optimized]`);
  expect(text).toContain("note: d0: ALUA peer groups gw-b id 2 active-non-optimized");
  // The state is read at list time: a change the serve side made shows at once.
  await setAluaGroupState(fake, deviceDir(provisioner, "d0"), "gw-a", "standby");
  text = listLines(await listed()).join("\n");
  expect(text).toContain("iscsi iqn.2003-01.org.example:d0 lun 0 [gw-a id 1 standby]");
  const [device] = await listed();
  expect(JSON.parse(JSON.stringify(device)).aluaGroups[0]).toEqual({ name: "gw-a", id: 1, state: "standby", preferred: false, members: ["iSCSI/iqn.2003-01.org.example:d0/tpgt_1/lun_0"] });
});
