import { describe, expect, test } from "bun:test";
import { naaDesignator, naaKey, unitSerialFor } from "../../src/scsi/identity.ts";

describe("identity", () => {
  test("the NAA designator follows spc_gen_naa_6h_vendor_specific: 6, LIO OUI 001405, 25 hex digits of the serial", () => {
    // targetcli-style UUID serial: its hex digits fill the designator, dashes skipped.
    const naa = naaDesignator("1f2e3d4c-5b6a-7980-a1b2-c3d4e5f60718");
    expect(naaKey(naa)).toBe("60014051f2e3d4c5b6a7980a1b2c3d4e");
  });

  test("non-hex characters of the serial are skipped and a short serial leaves zeros", () => {
    expect(naaKey(naaDesignator("sim0-serial"))).toBe("6001405" + "0ea" + "0".repeat(22));
  });

  test("a configured serial is used as given; an empty one is derived from the name, stably and uniquely", () => {
    expect(unitSerialFor(" abc ", "disk0")).toBe("abc");
    const derived = unitSerialFor("", "disk0");
    expect(derived).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(unitSerialFor("", "disk0")).toBe(derived);
    expect(unitSerialFor("", "disk1")).not.toBe(derived);
    expect(naaKey(naaDesignator(derived))).not.toBe(naaKey(naaDesignator(unitSerialFor("", "disk1"))));
  });
});
