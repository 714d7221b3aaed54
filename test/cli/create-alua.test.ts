// `create --serial/--alua-*` become the config file's keys: the device entry the flags make,
// validated and resolved as the config file's would be.
import { expect, test } from "bun:test";
import { deviceSchema } from "../../src/appliance-config/schema.ts";
import { aluaGroupsOf, toDeviceSpec } from "../../src/appliance-config/spec.ts";
import { deviceInputFrom } from "../../src/cli/create.ts";

function specFrom(args: Record<string, unknown>, rawArgs: string[]) {
  return toDeviceSpec("d0", deviceSchema.parse(deviceInputFrom({ config: "ram", size: "64M", ...args }, rawArgs)), "box1");
}

test("--alua-group/--alua-id/--alua-state/--alua-preferred put every export of the create in one group", () => {
  const rawArgs = ["--alua-peer", "gw-b:2:active-non-optimized", "--alua-peer=gw-c:3,gw-d:4:standby", "--initiator", "iqn.1993-08.org.debian:01:a", "--initiator", "iqn.1993-08.org.debian:01:b"];
  const spec = specFrom(
    { export: "loop,iscsi", serial: "0012345", "alua-group": "gw-a", "alua-id": "1", "alua-state": "active-optimized", "alua-preferred": true, initiator: "iqn.1993-08.org.debian:01:b" },
    rawArgs,
  );
  const own = { group: "gw-a", id: 1, state: "active-optimized" as const, preferred: true };
  expect(spec.serial).toBe("0012345");
  expect(spec.exports.map((entry) => entry.alua)).toEqual([own, own]);
  expect(spec.exports[1]).toMatchObject({ fabric: "iscsi", initiators: ["iqn.1993-08.org.debian:01:a", "iqn.1993-08.org.debian:01:b"] });
  expect(spec.aluaPeers).toEqual([
    { group: "gw-b", id: 2, state: "active-non-optimized", preferred: false },
    { group: "gw-c", id: 3, state: "active-optimized", preferred: false },
    { group: "gw-d", id: 4, state: "standby", preferred: false },
  ]);
  expect(aluaGroupsOf(spec).map((group) => group.id)).toEqual([1, 2, 3, 4]);
});

test("without ALUA flags the exports get no group and the device no peers or serial", () => {
  const spec = specFrom({ export: "loop" }, []);
  expect(spec.exports).toEqual([{ fabric: "loop" }]);
  expect(spec.aluaPeers).toEqual([]);
  expect(spec.serial).toBeUndefined();
});
