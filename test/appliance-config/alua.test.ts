// The config file's ALUA keys (an export's `alua`, a device's `alua_peers`) and `serial`: parsed
// into specs, and every mistake named by its key.
import { describe, expect, test } from "bun:test";
import { parseConfigText } from "../../src/appliance-config/load.ts";
import { CONFIG_FILE, problems } from "./problems.ts";
import { aluaGroupsOf } from "../../src/appliance-config/spec.ts";

const FILE = CONFIG_FILE;
const DEVICE = '[devices.d0]\nbackstore = "ram"\nsize = "64M"\n';
const CHAP = 'chap_user = "alice"\nchap_password = "correct-horse-battery"\n';
const LOOP_A = '[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 1 }\n';
const ISCSI_A = `[[devices.d0.exports]]\nfabric = "iscsi"\n${CHAP}alua = { group = "gw-a", id = 1 }\n`;

test("alua, alua_peers and serial parse into specs, with state and preferred defaulted", () => {
  const config = parseConfigText(
    FILE,
    `[devices.d0]
backstore = "ram"
size = "64M"
serial = "6001405abc-shared"
alua_peers = [{ group = "gw-b", id = 2, state = "active-non-optimized" }, { group = "gw-c", id = 3, state = "standby", preferred = true }]

[[devices.d0.exports]]
fabric = "loop"
alua = { group = "gw-a", id = 1 }

[[devices.d0.exports]]
fabric = "iscsi"
${CHAP}alua = { group = "gw-a", id = 1 }
`,
    "box1",
  );
  const [device] = config.devices;
  expect(device!.serial).toBe("6001405abc-shared");
  const own = { group: "gw-a", id: 1, state: "active-optimized" as const, preferred: false };
  expect(device!.exports[0]).toEqual({ fabric: "loop", alua: own });
  expect(device!.exports[1]).toMatchObject({ fabric: "iscsi", alua: own });
  expect(device!.aluaPeers).toEqual([
    { group: "gw-b", id: 2, state: "active-non-optimized", preferred: false },
    { group: "gw-c", id: 3, state: "standby", preferred: true },
  ]);
  expect(aluaGroupsOf(device!).map((group) => group.group)).toEqual(["gw-a", "gw-b", "gw-c"]);
});

test("a device without ALUA keys gets no serial and no peers", () => {
  const [device] = parseConfigText(FILE, `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\n`, "box1").devices;
  expect(device!.serial).toBeUndefined();
  expect(device!.aluaPeers).toEqual([]);
  expect(device!.exports).toEqual([{ fabric: "loop" }]);
});

/** [what is wrong, the file's text, the key the message must name, a phrase of the problem]. */
const INVALID: [string, string, string, string][] = [
  ["serial empty", `${DEVICE}serial = ""\n`, "devices.d0.serial", "is empty"],
  ["serial with a space", `${DEVICE}serial = "abc def"\n`, "devices.d0.serial", "printable ASCII without spaces"],
  ["serial not ASCII", `${DEVICE}serial = "séria"\n`, "devices.d0.serial", "printable ASCII without spaces"],
  ["serial too long", `${DEVICE}serial = "${"s".repeat(254)}"\n`, "devices.d0.serial", "longer than 253 characters"],
  ["alua group missing", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { id = 1 }\n`, "devices.d0.exports[0].alua.group", "missing"],
  ["alua id missing", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a" }\n`, "devices.d0.exports[0].alua.id", "missing"],
  ["alua group name", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw/a", id = 1 }\n`, "devices.d0.exports[0].alua.group", "is not a group name"],
  ["alua group is the kernel's", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "default_tg_pt_gp", id = 1 }\n`, "devices.d0.exports[0].alua.group", "the kernel's own group"],
  ["alua id zero", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 0 }\n`, "devices.d0.exports[0].alua.id", "must be 1 to 65535"],
  ["alua id too large", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 65536 }\n`, "devices.d0.exports[0].alua.id", "must be 1 to 65535"],
  ["alua id fraction", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 1.5 }\n`, "devices.d0.exports[0].alua.id", "whole number"],
  ["alua state", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 1, state = "active" }\n`, "devices.d0.exports[0].alua.state", "must be one of active-optimized, active-non-optimized, standby, unavailable"],
  ["alua preferred type", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 1, preferred = "yes" }\n`, "devices.d0.exports[0].alua.preferred", "expected boolean"],
  ["alua unknown key", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 1, prefered = true }\n`, "devices.d0.exports[0].alua.prefered", "unknown key"],
  ["iscsi alua id", `${DEVICE}[[devices.d0.exports]]\nfabric = "iscsi"\n${CHAP}alua = { group = "gw-a", id = -1 }\n`, "devices.d0.exports[0].alua.id", "must be 1 to 65535"],
  [
    "two exports in different groups with one id",
    `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\nalua = { group = "gw-a", id = 1 }\n[[devices.d0.exports]]\nfabric = "iscsi"\n${CHAP}alua = { group = "gw-x", id = 1 }\n`,
    "devices.d0.exports[1].alua.id",
    "1 is already the id of group gw-a",
  ],
  [
    "one group given two ids",
    `${DEVICE}${LOOP_A}[[devices.d0.exports]]\nfabric = "iscsi"\n${CHAP}alua = { group = "gw-a", id = 7 }\n`,
    "devices.d0.exports[1].alua.id",
    "group gw-a already has id 1 (exports[0])",
  ],
  [
    "one group given two states",
    `${DEVICE}${LOOP_A}[[devices.d0.exports]]\nfabric = "iscsi"\n${CHAP}alua = { group = "gw-a", id = 1, state = "standby" }\n`,
    "devices.d0.exports[1].alua.state",
    "a group has one state",
  ],
  ["peer named like the local group", `${DEVICE}alua_peers = [{ group = "gw-a", id = 2 }]\n${LOOP_A}`, "devices.d0.alua_peers[0].group", "gw-a is this gateway's own group (exports[0]), not a peer's"],
  ["peer with the local group's id", `${DEVICE}alua_peers = [{ group = "gw-b", id = 1 }]\n${ISCSI_A}`, "devices.d0.alua_peers[0].id", "1 is already the id of group gw-a"],
  ["two peers with one id", `${DEVICE}alua_peers = [{ group = "gw-b", id = 2 }, { group = "gw-c", id = 2 }]\n${LOOP_A}`, "devices.d0.alua_peers[1].id", "2 is already the id of group gw-b"],
  ["one peer twice", `${DEVICE}alua_peers = [{ group = "gw-b", id = 2 }, { group = "gw-b", id = 3 }]\n${LOOP_A}`, "devices.d0.alua_peers[1].group", "lists group gw-b twice"],
  ["peers without a local group", `${DEVICE}alua_peers = [{ group = "gw-b", id = 2 }]\n[[devices.d0.exports]]\nfabric = "loop"\n`, "devices.d0.alua_peers", "needs an export with alua"],
  ["peer state", `${DEVICE}alua_peers = [{ group = "gw-b", id = 2, state = "gone" }]\n${LOOP_A}`, "devices.d0.alua_peers[0].state", "must be one of"],
];

describe("every ALUA and serial mistake names the file, the key and the problem", () => {
  for (const [what, text, key, phrase] of INVALID) {
    test(what, () => {
      const lines = problems(text);
      const line = lines.find((candidate) => candidate.includes(`${key}: `) && candidate.includes(phrase));
      if (line === undefined) throw new Error(`no problem naming "${key}" with "${phrase}" in:\n${lines.join("\n")}`);
      expect(line.startsWith(`${FILE}: `)).toBe(true);
    });
  }
});

test("a serial of 253 printable characters is the longest the kernel takes", () => {
  const [device] = parseConfigText(FILE, `${DEVICE}serial = "${"s".repeat(253)}"\n`, "box1").devices;
  expect(device!.serial).toHaveLength(253);
});
