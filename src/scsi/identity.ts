// Who the logical unit says it is: the unit serial number (VPD 0x80) and the NAA designator
// (VPD 0x83) derived from it exactly as the kernel target does, so a device keeps the same
// /dev/disk/by-id name and EXTENDED COPY designator whether LIO or we serve it.
/** IEEE company id of LIO (Linux-IO / RisingTide), used by target_core_spc.c for NAA 6h. */
export const LIO_IEEE_COMPANY_ID = 0x001405;
export const NAA_DESIGNATOR_BYTES = 16;
/** INQUIRY_VPD_SERIAL_LEN in the kernel: the serial is at most this many bytes. */
export const UNIT_SERIAL_LENGTH_MAX = 254;

/**
 * The unit serial: configfs wwn/vpd_unit_serial when set, else a UUID-shaped string derived
 * from the device name, stable across restarts (targetcli also writes a UUID there).
 */
export function unitSerialFor(configuredSerial: string, deviceName: string): string {
  const trimmed = configuredSerial.trim();
  if (trimmed.length > 0) return trimmed.slice(0, UNIT_SERIAL_LENGTH_MAX);
  // Bun's native hasher, not node:crypto: that module costs every data-plane thread ~1 MB.
  const hex = new Bun.CryptoHasher("sha256").update(`tcmu-appliance:${deviceName}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * NAA IEEE Registered Extended designator (SPC-4 7.8.6.6.5), as spc_gen_naa_6h_vendor_specific():
 * NAA 6h, the 24-bit company id, then up to 25 hex digits taken from the serial (non-hex
 * characters skipped) filling the vendor specific identifier and its extension.
 */
export function naaDesignator(unitSerial: string): Uint8Array {
  const naa = new Uint8Array(NAA_DESIGNATOR_BYTES);
  const companyId = LIO_IEEE_COMPANY_ID;
  naa[0] = 0x60 | ((companyId >> 20) & 0x0f);
  naa[1] = (companyId >> 12) & 0xff;
  naa[2] = (companyId >> 4) & 0xff;
  naa[3] = (companyId & 0x0f) << 4;
  let nibble = 7; // the low nibble of byte 3
  for (let index = 0; index < unitSerial.length && nibble < 2 * NAA_DESIGNATOR_BYTES; index += 1) {
    const value = Number.parseInt(unitSerial[index]!, 16);
    if (Number.isNaN(value)) continue;
    const at = nibble >> 1;
    naa[at] = nibble % 2 === 0 ? (naa[at]! | (value << 4)) : (naa[at]! | value);
    nibble += 1;
  }
  return naa;
}

/** The designator as 32 lowercase hex digits: the registry's key. */
export function naaKey(designator: Uint8Array): string {
  let key = "";
  for (const byte of designator) key += byte.toString(16).padStart(2, "0");
  return key;
}
