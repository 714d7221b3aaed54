import { afterEach, expect, test } from "bun:test";
import { SimDevice } from "../../src/sim/sim-device.ts";
import * as cdbs from "../support/cdbs.ts";

let device: SimDevice | undefined;
afterEach(async () => {
  await device?.close();
  device = undefined;
});

test("a written block reads back through the simulated ring", async () => {
  device = new SimDevice();
  const data = cdbs.patternBytes(4096, 7);
  const written = await device.submit(cdbs.write10(100, 8), { dataOut: data });
  expect(written.status).toBe(0);
  const read = await device.submit(cdbs.read10(100, 8), { dataInBytes: 4096 });
  expect(read.status).toBe(0);
  expect(read.dataIn).toEqual(data);
});
