import { afterEach, describe, test } from "bun:test";
import { LBA_OUT_OF_RANGE } from "../../src/scsi/sense.ts";
import type { SimDevice } from "../../src/sim/sim-device.ts";
import { cdb10, expectCheck, expectGood, simDevice } from "./helpers.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  device?.scsi.close();
  await device?.close();
  device = undefined;
});

const SIZE = 1024 * 1024;
const BLOCKS = SIZE / 512;

describe("obsolete positioning commands", () => {
  test("REZERO UNIT and SEEK(6)/(10) inside the medium are GOOD, as the kernel answers legacy guests", async () => {
    device = simDevice({ sizeBytes: SIZE });
    expectGood(await device.submit(new Uint8Array([0x01, 0, 0, 0, 0, 0])));
    expectGood(await device.submit(Uint8Array.of(0x0b, 0, 0x07, 0xff, 0, 0)));
    expectGood(await device.submit(cdb10(0x2b, BLOCKS - 1, 0)));
  });

  test("a SEEK past the last LBA is LBA OUT OF RANGE", async () => {
    device = simDevice({ sizeBytes: SIZE });
    expectCheck(await device.submit(cdb10(0x2b, BLOCKS + 1, 0)), LBA_OUT_OF_RANGE, { information: BLOCKS + 1 });
  });
});
