// `list` shows each export's ALUA group and that group's state as configfs has them at list time.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { listLines, type ListedDevice } from "../../src/cli/list.ts";
import { setAluaGroupState } from "../../src/configfs/alua-groups.ts";
import { readInventory } from "../../src/configfs/inventory.ts";
import { loopWwn } from "../../src/configfs/loop-export.ts";
import { deviceDir, provisionDevice } from "../../src/configfs/provision.ts";
import { provisionerPerTest } from "../configfs/fake-configfs.ts";

const fixture = provisionerPerTest();

async function listed(): Promise<ListedDevice[]> {
  return (await readInventory(fixture.fake.roots, fixture.fake)).map((entry) => ({ ...entry, state: "not served", owner: "tcmu-appliance (cli)", notes: [] }));
}

test("list shows each export's group with its id and current state, and the peers' groups in a note", async () => {
  const iscsi = { fabric: "iscsi" as const, iqn: "iqn.2003-01.org.example:d0", portal: "127.0.0.1:3260", initiators: [], allowAnyone: true, alua: { group: "gw-a", id: 1, state: "active-optimized" as const, preferred: false } };
  await provisionDevice(
    fixture.provisioner,
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
  await setAluaGroupState(fixture.fake, deviceDir(fixture.provisioner, "d0"), "gw-a", "standby");
  text = listLines(await listed()).join("\n");
  expect(text).toContain("iscsi iqn.2003-01.org.example:d0 lun 0 [gw-a id 1 standby]");
  const [device] = await listed();
  expect(JSON.parse(JSON.stringify(device)).aluaGroups[0]).toEqual({ name: "gw-a", id: 1, state: "standby", preferred: false, members: ["iSCSI/iqn.2003-01.org.example:d0/tpgt_1/lun_0"] });
});
