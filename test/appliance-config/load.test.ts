import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfigFile, parseConfigText } from "../../src/appliance-config/load.ts";
import { CONFIG_FILE, problems } from "./problems.ts";

const FILE = CONFIG_FILE;
const root = mkdtempSync(join(tmpdir(), "tcmu-config-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const DEVICE = '[devices.d0]\nbackstore = "ram"\nsize = "64M"\n';
const ISCSI = `${DEVICE}[[devices.d0.exports]]\nfabric = "iscsi"\n`;
const CHAP = 'chap_user = "alice"\nchap_password = "correct-horse-battery"\n';

test("a complete file parses into specs with every default resolved", () => {
  const config = parseConfigText(
    FILE,
    `[serve]
subtype = "appliance"
allow_roots = ["/srv/images"]
metrics_listen = "127.0.0.1:9540"
log_level = "debug"
log_format = "json"

[devices.disk0]
backstore = "file//srv/images/disk0.img"
size = "1G"
block_size = 4096
write_cache = true

[[devices.disk0.exports]]
fabric = "loop"

[[devices.disk0.exports]]
fabric = "iscsi"
portal = "127.0.0.1:3260"
${CHAP}
[devices.scratch]
backstore = "ram"
size = 67108864
`,
    "Box-1",
  );
  expect(config.serve).toEqual({ subtype: "appliance", allowRoots: ["/srv/images"], metricsListen: "127.0.0.1:9540", logLevel: "debug", logFormat: "json", dataPlaneThreads: undefined, pollUs: undefined, fileIo: undefined, compat: undefined });
  expect(config.devices.map((device) => device.name)).toEqual(["disk0", "scratch"]);
  const [disk0, scratch] = config.devices;
  expect(disk0).toMatchObject({ sizeBytes: 1024 ** 3, blockSizeBytes: 4096, writeCache: true, hwMaxSectors: 128, maxDataAreaMb: 64, cmdTimeOutSeconds: 30 });
  expect(disk0!.exports[1]).toEqual({
    fabric: "iscsi",
    iqn: "iqn.2003-01.org.linux-iscsi.box-1:disk0",
    portal: "127.0.0.1:3260",
    chap: { user: "alice", password: "correct-horse-battery" },
    initiators: [],
    allowAnyone: false,
  });
  expect(scratch).toMatchObject({ sizeBytes: 64 * 1024 ** 2, blockSizeBytes: 512, hwMaxSectors: 1024, exports: [] });
});

test("an empty file is an empty config", () => {
  expect(parseConfigText(FILE, "").devices).toEqual([]);
});

test("loadConfigFile() names a file it cannot read", () => {
  expect(() => loadConfigFile(join(root, "missing.toml"))).toThrow(/missing\.toml: cannot be read: ENOENT/);
  const path = join(root, "ok.toml");
  writeFileSync(path, DEVICE);
  expect(loadConfigFile(path).devices).toHaveLength(1);
});

/** [what is wrong, the file's text, the key the message must name, a phrase of the problem]. */
const INVALID: [string, string, string, string][] = [
  ["TOML syntax", 'a = = 1\n', "line 1", "not valid TOML"],
  ["TOML syntax on a later line", `${DEVICE}size = = 2\n`, "line 4", "not valid TOML"],
  ["unknown top-level key", "colour = 1\n", "colour", "unknown key"],
  ["unknown serve key", "[serve]\nport = 1\n", "serve.port", "unknown key"],
  ["serve.subtype", '[serve]\nsubtype = "a/b"\n', "serve.subtype", "letters, digits"],
  ["serve.allow_roots", '[serve]\nallow_roots = ["srv"]\n', "serve.allow_roots[0]", "absolute path"],
  ["serve.metrics_listen", '[serve]\nmetrics_listen = "localhost"\n', "serve.metrics_listen", "address:port"],
  ["serve.metrics_listen port", '[serve]\nmetrics_listen = "127.0.0.1:70000"\n', "serve.metrics_listen", "address:port"],
  ["serve.log_level", '[serve]\nlog_level = "loud"\n', "serve.log_level", "Invalid option"],
  ["serve.log_format", '[serve]\nlog_format = "xml"\n', "serve.log_format", "Invalid option"],
  ["device name", '[devices."a/b"]\nbackstore = "ram"\nsize = "1M"\n', "devices.a/b", "is not a device name"],
  ["unknown device key", `${DEVICE}colour = "red"\n`, "devices.d0.colour", "unknown key"],
  ["backstore missing", '[devices.d0]\nsize = "1M"\n', "devices.d0.backstore", "missing"],
  ["backstore grammar", '[devices.d0]\nbackstore = "tape"\nsize = "1M"\n', "devices.d0.backstore", 'backstore "tape": unknown'],
  ["backstore relative path", '[devices.d0]\nbackstore = "file/srv/a.img"\nsize = "1M"\n', "devices.d0.backstore", "must be absolute"],
  ["backstore with a comma", '[devices.d0]\nbackstore = "file//srv/a,b.img"\nsize = "1M"\n', "devices.d0.backstore", "may not contain ','"],
  ["dev_config too long", `[devices.d0]\nbackstore = "file//${"x".repeat(250)}"\nsize = "1M"\n`, "devices.d0.backstore", "longer than 255 bytes"],
  ["size missing", '[devices.d0]\nbackstore = "ram"\n', "devices.d0.size", "missing"],
  ["size unparsable", '[devices.d0]\nbackstore = "ram"\nsize = "64X"\n', "devices.d0.size", "is not a size"],
  ["size zero", '[devices.d0]\nbackstore = "ram"\nsize = 0\n', "devices.d0.size", "is not a size"],
  ["size not whole blocks", '[devices.d0]\nbackstore = "ram"\nsize = 1000\n', "devices.d0.size", "not a multiple of block_size 512"],
  ["block_size", `${DEVICE}block_size = 520\n`, "devices.d0.block_size", "must be one of 512, 1024, 2048, 4096"],
  ["write_cache type", `${DEVICE}write_cache = "yes"\n`, "devices.d0.write_cache", "expected boolean"],
  ["hw_max_sectors fraction", `${DEVICE}hw_max_sectors = 1.5\n`, "devices.d0.hw_max_sectors", "whole number"],
  ["hw_max_sectors range", `${DEVICE}hw_max_sectors = 0\n`, "devices.d0.hw_max_sectors", ">=1"],
  ["max_data_area_mb range", `${DEVICE}max_data_area_mb = 4096\n`, "devices.d0.max_data_area_mb", "<=2048"],
  ["cmd_time_out range", `${DEVICE}cmd_time_out = -1\n`, "devices.d0.cmd_time_out", ">=0"],
  ["compat mode", `[serve]\ncompat = "targetcli"\n`, "serve.compat", "tcmu-runner"],
  ["transfer larger than the data area", `${DEVICE}hw_max_sectors = 8192\nmax_data_area_mb = 1\n`, "devices.d0.hw_max_sectors", "would not fit"],
  ["fabric unknown", `${DEVICE}[[devices.d0.exports]]\nfabric = "fc"\n`, "devices.d0.exports[0].fabric", 'must be "loop" or "iscsi"'],
  ["loop export key", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\niqn = "iqn.2003-01.org.x:y"\n`, "devices.d0.exports[0].iqn", "unknown key"],
  ["two loop exports", `${DEVICE}[[devices.d0.exports]]\nfabric = "loop"\n[[devices.d0.exports]]\nfabric = "loop"\n`, "devices.d0.exports", "more than one loop export"],
  ["iscsi without access control", ISCSI, "devices.d0.exports[0].allow_anyone", "needs chap_user/chap_password, initiators, or allow_anyone = true"],
  ["iqn", `${ISCSI}${CHAP}iqn = "IQN.bad"\n`, "devices.d0.exports[0].iqn", "is not an iSCSI qualified name"],
  ["portal", `${ISCSI}${CHAP}portal = "0.0.0.0"\n`, "devices.d0.exports[0].portal", "is not an address:port portal"],
  ["portal octet", `${ISCSI}${CHAP}portal = "300.0.0.1:3260"\n`, "devices.d0.exports[0].portal", "is not an address:port portal"],
  ["chap_user without password", `${ISCSI}chap_user = "alice"\n`, "devices.d0.exports[0].chap_password", "go together"],
  ["chap secret too short", `${ISCSI}chap_user = "alice"\nchap_password = "short"\n`, "devices.d0.exports[0].chap_password", "at least 12 characters"],
  ["chap secret with a space", `${ISCSI}chap_user = "alice"\nchap_password = "has a space in it"\n`, "devices.d0.exports[0].chap_password", "printable ASCII without spaces"],
  ["chap user empty", `${ISCSI}chap_user = ""\nchap_password = "correct-horse-battery"\n`, "devices.d0.exports[0].chap_user", "is empty"],
  ["mutual without one-way CHAP", `${ISCSI}initiators = ["iqn.1993-08.org.debian:01:abc"]\nchap_mutual_user = "target"\nchap_mutual_password = "another-long-secret"\n`, "devices.d0.exports[0].chap_mutual_user", "needs chap_user"],
  ["mutual user without password", `${ISCSI}${CHAP}chap_mutual_user = "target"\n`, "devices.d0.exports[0].chap_mutual_password", "go together"],
  ["allow_anyone with CHAP", `${ISCSI}${CHAP}allow_anyone = true\n`, "devices.d0.exports[0].allow_anyone", "cannot be combined"],
  ["initiator name", `${ISCSI}initiators = ["client1"]\n`, "devices.d0.exports[0].initiators[0]", "is not an initiator name"],
  ["initiator twice", `${ISCSI}initiators = ["iqn.1993-08.org.debian:01:abc", "iqn.1993-08.org.debian:01:abc"]\n`, "devices.d0.exports[0].initiators", "twice"],
  ["same IQN on two devices", `${ISCSI}${CHAP}iqn = "iqn.2003-01.org.x:shared"\n[devices.d1]\nbackstore = "ram"\nsize = "1M"\n[[devices.d1.exports]]\nfabric = "iscsi"\n${CHAP}iqn = "iqn.2003-01.org.x:shared"\n`, "devices.d1.exports[0].iqn", "already used by device d0"],
];

describe("every validation error names the file, the key and the problem", () => {
  for (const [what, text, key, phrase] of INVALID) {
    test(what, () => {
      const lines = problems(text);
      const line = lines.find((candidate) => candidate.includes(key) && candidate.includes(phrase));
      if (line === undefined) throw new Error(`no problem naming "${key}" with "${phrase}" in:\n${lines.join("\n")}`);
      expect(line.startsWith(`${FILE}: `)).toBe(true);
    });
  }
});

test("all problems of a file are reported at once", () => {
  const lines = problems('[serve]\nlog_level = "loud"\n[devices.d0]\nbackstore = "tape"\nsize = "x"\n');
  expect(lines.length).toBe(3);
});

test("[serve] takes the data plane's threads, busy-poll and file I/O, and names a bad key", () => {
  const good = parseConfigText("/etc/t.toml", "[serve]\ndata_plane_threads = 4\npoll_us = 50\nfile_io = \"threads\"\n", "box");
  expect(good.serve).toMatchObject({ dataPlaneThreads: 4, pollUs: 50, fileIo: "threads" });
  for (const [text, key] of [["data_plane_threads = 0", "data_plane_threads"], ["poll_us = -1", "poll_us"], ['file_io = "fast"', "file_io"]] as const) {
    expect(() => parseConfigText("/etc/t.toml", `[serve]\n${text}\n`, "box")).toThrow(key);
  }
});

test("serve.compat = \"tcmu-runner\" is read as serve --compat tcmu-runner", () => {
  expect(parseConfigText("/etc/x.toml", `[serve]\ncompat = "tcmu-runner"\n`).serve.compat).toBe("tcmu-runner");
});

test("examples/quickstart.toml is a valid config: one RAM disk exported through tcm_loop", () => {
  const config = loadConfigFile(join(import.meta.dir, "..", "..", "examples", "quickstart.toml"));
  expect(config.devices).toHaveLength(1);
  expect(config.devices[0]).toMatchObject({ name: "quick0", backstore: "ram/quick0", sizeBytes: 1024 ** 3, exports: [{ fabric: "loop" }] });
  expect(config.serve.metricsListen).toBe("127.0.0.1:9540");
});
