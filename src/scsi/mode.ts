// MODE SENSE (6)/(10) and MODE SELECT (6)/(10), SPC-4 6.11–6.14, over the page table in
// mode-pages.ts. MODE SELECT is parsed and checked whole before any page is applied.
import type { IoResult } from "../../backstores/types.ts";
import type { ScsiCommand } from "../ring/command.ts";
import { cdbU16, paramU16, paramU32, paramU64, putU16, putU32, putU64 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";
import { MODE_PAGES, modePage, type ModePage, type ModeValues } from "./mode-pages.ts";
import {
  INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_COMMAND_IU,
  INVALID_FIELD_IN_PARAMETER_LIST,
  PARAMETER_LIST_LENGTH_ERROR,
  SAVING_PARAMETERS_NOT_SUPPORTED,
  type FieldPointer,
  type SenseReason,
} from "./sense.ts";
import { CONTROL_NACA, type OpcodeRow } from "./table.ts";

export const MODE_SELECT_6 = 0x15;
export const MODE_SENSE_6 = 0x1a;
export const MODE_SELECT_10 = 0x55;
export const MODE_SENSE_10 = 0x5a;

const ALL_PAGES = 0x3f;
const PAGE_CONTROL_CHANGEABLE = 1;
const PAGE_CONTROL_DEFAULT = 2;
const PAGE_CONTROL_SAVED = 3;
/** Device-specific parameter (SBC-3 6.4.1): WP, and DPOFUA since DPO and FUA are honoured. */
const WP_BIT = 0x80;
const DPOFUA_BIT = 0x10;
const SHORT_BLOCK_DESCRIPTOR_BYTES = 8;
const LONG_BLOCK_DESCRIPTOR_BYTES = 16;
/** MODE DATA LENGTH of the 6-byte form is one byte. */
const MODE_DATA_6_BYTES_MAX = 256;

function modeSense(tenByte: boolean) {
  return (device: LogicalUnit, command: ScsiCommand): void => {
    const cdb = command.cdb;
    const disableBlockDescriptors = (cdb[1]! & 0x08) !== 0;
    const longLba = tenByte && (cdb[1]! & 0x10) !== 0;
    const pageControl = cdb[2]! >> 6;
    const pageCode = cdb[2]! & 0x3f;
    const subpage = cdb[3]!;
    const allocationLengthBytes = tenByte ? cdbU16(cdb, 7) : cdb[4]!;
    const pages = pageCode === ALL_PAGES ? MODE_PAGES : MODE_PAGES.filter((entry) => entry.page === pageCode);
    if (pages.length === 0) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 2, bit: 5 } });
    // Subpage 00h: page_0 formats; FFh with page 3Fh: every page and subpage. No page here has
    // subpages, so anything else names a page that does not exist.
    if (subpage !== 0 && !(pageCode === ALL_PAGES && subpage === 0xff)) {
      return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 3 } });
    }
    // SPC-4 6.11: no page is savable, so asking for saved values is refused this way.
    if (pageControl === PAGE_CONTROL_SAVED) {
      return device.fail(command, SAVING_PARAMETERS_NOT_SUPPORTED, { field: { inCdb: true, byte: 2, bit: 7 } });
    }
    const length = buildModeData(device, { tenByte, disableBlockDescriptors, longLba, pageControl, pages });
    device.replyScratch(command, length, allocationLengthBytes);
  };
}

interface ModeDataRequest {
  tenByte: boolean;
  disableBlockDescriptors: boolean;
  longLba: boolean;
  pageControl: number;
  pages: readonly ModePage[];
}

function buildModeData(device: LogicalUnit, request: ModeDataRequest): number {
  const data = device.scratch;
  const headerBytes = request.tenByte ? 8 : 4;
  data.fill(0, 0, 512);
  const deviceSpecific = (device.backstore.capabilities.readOnly ? WP_BIT : 0) | DPOFUA_BIT;
  data[request.tenByte ? 3 : 2] = deviceSpecific;
  let at = headerBytes;
  if (!request.disableBlockDescriptors) {
    const blocks = device.capacityBlocks;
    // SPC-4 7.5.5: a long descriptor only when asked (LLBAA) and the count needs it, as the
    // kernel does; a short one saturates at FFFFFFFFh.
    const long = request.longLba && blocks > 0xffff_ffff;
    const descriptorBytes = long ? LONG_BLOCK_DESCRIPTOR_BYTES : SHORT_BLOCK_DESCRIPTOR_BYTES;
    if (long) {
      data[4] = 0x01; // LONGLBA
      putU64(data, at, blocks);
      putU32(data, at + 12, device.blockSizeBytes);
    } else {
      putU32(data, at, Math.min(blocks, 0xffff_ffff));
      putU32(data, at + 4, device.blockSizeBytes); // byte 4 is DENSITY CODE 0, then 3 bytes
    }
    if (request.tenByte) putU16(data, 6, descriptorBytes);
    else data[3] = descriptorBytes;
    at += descriptorBytes;
  }
  for (const page of request.pages) {
    if (!request.tenByte && at + page.lengthBytes > MODE_DATA_6_BYTES_MAX) break;
    const target = data.subarray(at, at + page.lengthBytes);
    if (request.pageControl === PAGE_CONTROL_CHANGEABLE) {
      target.set(page.changeable);
      target[0] = page.page;
      target[1] = page.lengthBytes - 2;
    } else {
      const values: ModeValues = request.pageControl === PAGE_CONTROL_DEFAULT ? "default" : "current";
      page.fill(device, values, target);
    }
    at += page.lengthBytes;
  }
  // MODE DATA LENGTH excludes itself (SPC-4 7.5.4).
  if (request.tenByte) putU16(data, 0, at - 2);
  else data[0] = at - 1;
  return at;
}

/** A rejected parameter list: the reason and where (SPC-4 4.5.2.4.2, C/D = 0). */
class ParameterError {
  readonly reason: SenseReason;
  readonly field: FieldPointer | undefined;
  constructor(reason: SenseReason, byte?: number, bit?: number) {
    this.reason = reason;
    this.field = byte === undefined ? undefined : { inCdb: false, byte, ...(bit === undefined ? {} : { bit }) };
  }
}

function modeSelect(tenByte: boolean) {
  return (device: LogicalUnit, command: ScsiCommand): IoResult => {
    const cdb = command.cdb;
    const pageFormat = (cdb[1]! & 0x10) !== 0;
    const savePages = (cdb[1]! & 0x01) !== 0;
    const parameterListBytes = tenByte ? cdbU16(cdb, 7) : cdb[4]!;
    if (savePages) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 0 } });
    if (parameterListBytes === 0) return;
    // PF=0 would mean vendor-specific pages; there are none (spc_emulate_modeselect agrees).
    if (!pageFormat) return device.fail(command, INVALID_FIELD_IN_CDB, { field: { inCdb: true, byte: 1, bit: 4 } });
    const list = device.parameterList(command, parameterListBytes);
    if (list === undefined) return device.fail(command, INVALID_FIELD_IN_COMMAND_IU);
    const parsed = parseModeParameters(device, list, tenByte);
    if (parsed instanceof ParameterError) {
      return device.fail(command, parsed.reason, parsed.field === undefined ? undefined : { field: parsed.field });
    }
    const cacheWasEnabled = device.writeCacheEnabled;
    for (const { page, bytes } of parsed) page.apply?.(device, bytes);
    // SBC-3 6.4.5: with WCE now 0, data the cache already took is made durable too.
    if (cacheWasEnabled && !device.writeCacheEnabled) return flushAfterModeSelect(device, command);
  };
}

async function flushAfterModeSelect(device: LogicalUnit, command: ScsiCommand): Promise<void> {
  try {
    await device.backstore.flush();
  } catch (error) {
    device.failFromBackstore(command, error);
  }
}

interface SelectedPage {
  page: ModePage;
  bytes: Uint8Array;
}

/** Checks header, block descriptor and every page; returns the pages to apply, copied out. */
function parseModeParameters(device: LogicalUnit, list: Uint8Array, tenByte: boolean): SelectedPage[] | ParameterError {
  const headerBytes = tenByte ? 8 : 4;
  if (list.length < headerBytes) return new ParameterError(PARAMETER_LIST_LENGTH_ERROR);
  const longLba = tenByte && (list[4]! & 0x01) !== 0;
  const descriptorBytes = tenByte ? paramU16(list, 6) : list[3]!;
  const descriptorLengthAt = tenByte ? 6 : 3;
  const expectedDescriptor = longLba ? LONG_BLOCK_DESCRIPTOR_BYTES : SHORT_BLOCK_DESCRIPTOR_BYTES;
  if (descriptorBytes !== 0 && descriptorBytes !== expectedDescriptor) {
    return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, descriptorLengthAt);
  }
  if (headerBytes + descriptorBytes > list.length) return new ParameterError(PARAMETER_LIST_LENGTH_ERROR);
  if (descriptorBytes > 0) {
    const problem = checkBlockDescriptor(device, list, headerBytes, longLba);
    if (problem !== undefined) return problem;
  }
  const selected: SelectedPage[] = [];
  let at = headerBytes + descriptorBytes;
  while (at < list.length) {
    if (list.length - at < 2) return new ParameterError(PARAMETER_LIST_LENGTH_ERROR);
    // PS (bit 7) is reserved in MODE SELECT and ignored; SPF (bit 6) would be a subpage.
    const page = (list[at]! & 0x40) === 0 ? modePage(list[at]! & 0x3f) : undefined;
    if (page === undefined) return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, at, 5);
    if (list[at + 1]! + 2 !== page.lengthBytes) return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, at + 1);
    if (at + page.lengthBytes > list.length) return new ParameterError(PARAMETER_LIST_LENGTH_ERROR);
    const bytes = list.slice(at, at + page.lengthBytes);
    const problem = checkPageChanges(device, page, bytes, at);
    if (problem !== undefined) return problem;
    selected.push({ page, bytes });
    at += page.lengthBytes;
  }
  return selected;
}

/**
 * SBC-3 6.4.2: the block length cannot change, and the capacity only stays as it is (a NUMBER
 * OF LOGICAL BLOCKS of zero also means "keep it"). Anything else is an invalid field.
 */
function checkBlockDescriptor(device: LogicalUnit, list: Uint8Array, at: number, longLba: boolean): ParameterError | undefined {
  const blocks = device.capacityBlocks;
  const givenBlocks = longLba ? paramU64(list, at) : paramU32(list, at);
  const currentBlocks = longLba ? blocks : Math.min(blocks, 0xffff_ffff);
  if (givenBlocks !== 0 && givenBlocks !== currentBlocks) return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, at);
  const lengthAt = longLba ? at + 12 : at + 4;
  const givenBlockLength = longLba ? paramU32(list, lengthAt) : paramU32(list, lengthAt) & 0x00ff_ffff;
  if (givenBlockLength !== device.blockSizeBytes) return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, lengthAt);
  if (!longLba && list[at + 4] !== 0) return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, at + 4); // DENSITY CODE
  return undefined;
}

/** SPC-4 6.11: a bit that is not changeable must equal its current value. */
function checkPageChanges(device: LogicalUnit, page: ModePage, given: Uint8Array, at: number): ParameterError | undefined {
  const current = new Uint8Array(page.lengthBytes);
  page.fill(device, "current", current);
  for (let index = 2; index < page.lengthBytes; index += 1) {
    const differs = (given[index]! ^ current[index]!) & ~page.changeable[index]! & 0xff;
    if (differs !== 0) return new ParameterError(INVALID_FIELD_IN_PARAMETER_LIST, at + index, 31 - Math.clz32(differs));
  }
  return undefined;
}

export const MODE_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: MODE_SENSE_6,
    name: "MODE SENSE(6)",
    usage: [MODE_SENSE_6, 0x08, 0xff, 0xff, 0xff, CONTROL_NACA],
    execute: modeSense(false),
  },
  {
    opcode: MODE_SENSE_10,
    name: "MODE SENSE(10)",
    usage: [MODE_SENSE_10, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, CONTROL_NACA],
    execute: modeSense(true),
  },
  {
    opcode: MODE_SELECT_6,
    name: "MODE SELECT(6)",
    usage: [MODE_SELECT_6, 0x11, 0, 0, 0xff, CONTROL_NACA],
    execute: modeSelect(false),
  },
  {
    opcode: MODE_SELECT_10,
    name: "MODE SELECT(10)",
    usage: [MODE_SELECT_10, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, CONTROL_NACA],
    execute: modeSelect(true),
  },
];
