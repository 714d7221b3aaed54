// Vital product data pages (SPC-4 7.8, SBC-3 6.5), one row per page like the kernel's
// evpd_handlers[]; page 0x00 lists the table itself. Each builder fills device.scratch from byte
// 0 and returns the page's length; bytes it does not set are zero.
import { putAscii, putU16, putU32, putU64 } from "./cdb.ts";
import { NAA_DESIGNATOR_BYTES } from "./identity.ts";
import {
  UNMAP_BLOCKS_MAX,
  UNMAP_DESCRIPTORS_MAX,
  WRITE_SAME_BLOCKS_MAX,
  compareAndWriteBlocksMax,
  optimalGranularityBlocks,
  optimalTransferBlocks,
} from "./limits.ts";
import type { LogicalUnit } from "./logical-unit.ts";

/** Peripheral qualifier 0, device type 0 (direct access block device): byte 0 of every page. */
export const PERIPHERAL_DIRECT_ACCESS = 0x00;
/** Pages whose PAGE LENGTH the kernel fixes at 0x3c (SBC-3 6.5.3, 6.5.2; SPC-4 7.8.7). */
const LONG_PAGE_LENGTH = 0x3c;

interface VpdPage {
  readonly page: number;
  readonly name: string;
  /** Fills `data` (already zeroed) and returns the page length including its 4-byte header. */
  readonly build: (device: LogicalUnit, data: Uint8Array) => number;
}

export const VPD_PAGES: readonly VpdPage[] = [
  { page: 0x00, name: "Supported VPD Pages", build: supportedPages },
  { page: 0x80, name: "Unit Serial Number", build: unitSerialNumber },
  { page: 0x83, name: "Device Identification", build: deviceIdentification },
  { page: 0x86, name: "Extended INQUIRY Data", build: extendedInquiry },
  { page: 0xb0, name: "Block Limits", build: blockLimits },
  { page: 0xb1, name: "Block Device Characteristics", build: blockDeviceCharacteristics },
  { page: 0xb2, name: "Logical Block Provisioning", build: logicalBlockProvisioning },
];

/** The most bytes any page builds (0x83 with a 254-byte serial and a 16-byte product). */
const VPD_PAGE_BYTES_MAX = 1024;

/** Builds `page` into device.scratch; undefined for a page this unit does not have. */
export function buildVpdPage(device: LogicalUnit, page: number): number | undefined {
  const entry = VPD_PAGES.find((candidate) => candidate.page === page);
  if (entry === undefined) return undefined;
  const data = device.scratch;
  data.fill(0, 0, VPD_PAGE_BYTES_MAX);
  data[0] = PERIPHERAL_DIRECT_ACCESS;
  data[1] = page;
  return entry.build(device, data);
}

function supportedPages(_device: LogicalUnit, data: Uint8Array): number {
  VPD_PAGES.forEach((entry, index) => {
    data[4 + index] = entry.page;
  });
  putU16(data, 2, VPD_PAGES.length);
  return 4 + VPD_PAGES.length;
}

/** SPC-4 7.8.15: the serial from configfs wwn/vpd_unit_serial (or derived from the name). */
function unitSerialNumber(device: LogicalUnit, data: Uint8Array): number {
  const serial = device.unitSerial;
  putAscii(data, 4, serial.length, serial);
  putU16(data, 2, serial.length);
  return 4 + serial.length;
}

/**
 * SPC-4 7.8.6: the logical unit's NAA IEEE Registered Extended designator (binary, association
 * LU, type 3 — what EXTENDED COPY and udev's wwn- links use), then a T10 vendor ID designator
 * "VENDOR  PRODUCT:SERIAL" as spc_emulate_evpd_83() builds it. With ALUA, the relative target
 * port and target port group designators follow: the port is the kernel's business and not
 * known to a TCMU handler, so they name the gateway's group and its one port (docs/ha.md), which
 * is all a multipath layer needs to match paths to RTPG's groups.
 */
function deviceIdentification(device: LogicalUnit, data: Uint8Array): number {
  let at = 4;
  data[at] = 0x01; // PROTOCOL IDENTIFIER 0, CODE SET binary
  data[at + 1] = 0x03; // PIV 0, ASSOCIATION logical unit, DESIGNATOR TYPE NAA
  data[at + 3] = NAA_DESIGNATOR_BYTES;
  data.set(device.naa, at + 4);
  at += 4 + NAA_DESIGNATOR_BYTES;

  const identity = device.config.identity;
  const product = identity.product.slice(0, 16);
  const vendorSpecific = `${product}:${device.unitSerial}`;
  data[at] = 0x02; // CODE SET ASCII
  data[at + 1] = 0x01; // ASSOCIATION logical unit, DESIGNATOR TYPE T10 vendor ID
  putAscii(data, at + 4, 8, identity.vendor);
  putAscii(data, at + 12, vendorSpecific.length, vendorSpecific);
  const designatorLength = 8 + vendorSpecific.length;
  data[at + 3] = designatorLength;
  at += 4 + designatorLength;

  const alua = device.alua;
  if (alua !== undefined) {
    // The relative target port identifier of the group's one port is the group id.
    at = putTargetPortDesignator(data, at, alua.protocolIdentifier, DESIGNATOR_RELATIVE_TARGET_PORT, alua.localGroupId);
    at = putTargetPortDesignator(data, at, alua.protocolIdentifier, DESIGNATOR_TARGET_PORT_GROUP, alua.localGroupId);
  }

  putU16(data, 2, at - 4);
  return at;
}

/** DESIGNATOR TYPE (SPC-4 table 459) of the target port designators. */
const DESIGNATOR_RELATIVE_TARGET_PORT = 0x4;
const DESIGNATOR_TARGET_PORT_GROUP = 0x5;
const TARGET_PORT_DESIGNATOR_LENGTH = 4;

/**
 * SPC-4 7.8.6.6 and 7.8.6.7 as spc_emulate_evpd_83() lays them out: PROTOCOL IDENTIFIER with
 * CODE SET binary, PIV=1 (the protocol identifier is valid), ASSOCIATION target port (01b), the
 * type, then 2 reserved (obsolete) bytes and the 16-bit identifier. Returns the next offset.
 */
function putTargetPortDesignator(data: Uint8Array, at: number, protocolIdentifier: number, type: number, value: number): number {
  data[at] = (protocolIdentifier << 4) | 0x01;
  data[at + 1] = 0x80 | 0x10 | type;
  data[at + 3] = TARGET_PORT_DESIGNATOR_LENGTH;
  putU16(data, at + 6, value);
  return at + 4 + TARGET_PORT_DESIGNATOR_LENGTH;
}

/**
 * SPC-4 7.8.7: HEADSUP, ORDSUP, SIMPSUP (the kernel queues every task attribute), and V_SUP while
 * a volatile write cache is enabled, as spc_emulate_evpd_86() does. No protection information.
 */
function extendedInquiry(device: LogicalUnit, data: Uint8Array): number {
  data[3] = LONG_PAGE_LENGTH;
  data[5] = 0x07;
  data[6] = device.writeCacheEnabled ? 0x01 : 0x00;
  return 4 + LONG_PAGE_LENGTH;
}

/**
 * SBC-3 6.5.3. WSNZ: WRITE SAME with zero blocks is refused (as the kernel does). The maximum
 * transfer is what the data area holds, the optimal one hw_max_sectors; the unmap fields only
 * when the backstore can deallocate.
 * MAXIMUM PREFETCH LENGTH stays zero: PRE-FETCH has no length limit.
 */
function blockLimits(device: LogicalUnit, data: Uint8Array): number {
  data[3] = LONG_PAGE_LENGTH;
  data[4] = 0x01; // WSNZ
  data[5] = compareAndWriteBlocksMax(device);
  putU16(data, 6, optimalGranularityBlocks(device));
  putU32(data, 8, device.config.maxTransferBlocks);
  putU32(data, 12, optimalTransferBlocks(device));
  const capabilities = device.backstore.capabilities;
  if (capabilities.unmap) {
    putU32(data, 20, UNMAP_BLOCKS_MAX);
    putU32(data, 24, UNMAP_DESCRIPTORS_MAX);
    // OPTIMAL UNMAP GRANULARITY: what the store really frees (a RAM chunk, a file system
    // block); smaller pieces are only zeroed. Aligned to LBA 0, so UGAVALID stays 0.
    const granularityBytes = capabilities.unmapGranularityBytes ?? device.blockSizeBytes;
    putU32(data, 28, Math.max(1, Math.floor(granularityBytes / device.blockSizeBytes)));
  }
  putU64(data, 36, WRITE_SAME_BLOCKS_MAX);
  return 4 + LONG_PAGE_LENGTH;
}

/** SBC-3 6.5.2: MEDIUM ROTATION RATE 0001h, non-rotating medium (RAM, files on SSD or cache). */
function blockDeviceCharacteristics(_device: LogicalUnit, data: Uint8Array): number {
  data[3] = LONG_PAGE_LENGTH;
  putU16(data, 4, 0x0001);
  return 4 + LONG_PAGE_LENGTH;
}

/**
 * SBC-3 6.5.4, as the backstore really behaves: LBPU (UNMAP), LBPWS and LBPWS10 (WRITE SAME
 * 16/10 with UNMAP deallocate) when it can deallocate, LBPRZ when deallocated blocks read as
 * zeros, and PROVISIONING TYPE thin for such a store. No anchors (ANC_SUP 0), DP 0.
 */
function logicalBlockProvisioning(device: LogicalUnit, data: Uint8Array): number {
  const capabilities = device.backstore.capabilities;
  putU16(data, 2, 0x0004);
  if (capabilities.unmap) {
    data[5] = 0x80 | 0x40 | 0x20 | (capabilities.unmapReadsZeroes ? 0x04 : 0x00);
    data[6] = 0x02; // PROVISIONING TYPE: thin provisioned
  }
  return 8;
}
