// Mode pages (SPC-4 7.5, SBC-3 6.4), one row each like the kernel's modesense_handlers[]: the
// current and default values, and the mask of changeable bits that MODE SELECT may alter. Pages
// are listed in ascending page code, the order MODE SENSE returns them in (SPC-4 6.11).
import { putU16 } from "./cdb.ts";
import type { LogicalUnit } from "./logical-unit.ts";

export type ModeValues = "current" | "default";

export interface ModePage {
  readonly page: number;
  readonly name: string;
  /** Whole page, header included (PAGE LENGTH + 2). */
  readonly lengthBytes: number;
  /** Changeable bits by byte, over the whole page (header bytes are zero). */
  readonly changeable: readonly number[];
  /** Writes the page (header included) into `target`, which is zeroed and lengthBytes long. */
  readonly fill: (device: LogicalUnit, values: ModeValues, target: Uint8Array) => void;
  /** Takes the changeable bits of an accepted MODE SELECT page; absent when none change. */
  readonly apply?: (device: LogicalUnit, page: Uint8Array) => void;
}

/** Caching page byte 2: WCE (bit 2), RCD (bit 0). */
export const CACHING_WCE = 0x04;
/** Control page byte 2: D_SENSE (bit 2), GLTSD (bit 1). */
export const CONTROL_D_SENSE = 0x04;
const CONTROL_GLTSD = 0x02;

function header(target: Uint8Array, page: number, lengthBytes: number): void {
  target[0] = page;
  target[1] = lengthBytes - 2;
}

function mask(lengthBytes: number, bits: Record<number, number>): number[] {
  return Array.from({ length: lengthBytes }, (_, index) => bits[index] ?? 0);
}

/** Read-write error recovery (SBC-3 6.4.6): defaults only, nothing changeable. */
const READ_WRITE_ERROR_RECOVERY: ModePage = {
  page: 0x01,
  name: "Read-Write Error Recovery",
  lengthBytes: 12,
  changeable: mask(12, {}),
  fill: (_device, _values, target) => header(target, 0x01, 12),
};

/**
 * Caching (SBC-3 6.4.5): WCE is the device's write cache state and the one changeable bit —
 * WCE=0 makes every write durable before status. RCD stays 0 (reads are never refused the
 * page cache) and DRA is set as the kernel reports it.
 */
const CACHING: ModePage = {
  page: 0x08,
  name: "Caching",
  lengthBytes: 20,
  changeable: mask(20, { 2: CACHING_WCE }),
  fill: (device, values, target) => {
    header(target, 0x08, 20);
    const enabled = values === "current" ? device.writeCacheEnabled : device.config.writeCacheEnabled;
    target[2] = enabled ? CACHING_WCE : 0;
    target[12] = 0x20; // DRA: no read-ahead
  },
  apply: (device, page) => {
    const enabled = (page[2]! & CACHING_WCE) !== 0;
    if (enabled === device.writeCacheEnabled) return;
    device.writeCacheEnabled = enabled;
    device.config.onWriteCacheChange?.(enabled);
  },
};

/**
 * Control (SPC-4 7.5.8): D_SENSE selects descriptor-format sense and is changeable. The rest is
 * what spc_modesense_control() reports with the kernel's defaults: GLTSD, QUEUE ALGORITHM
 * MODIFIER 1 (unrestricted reordering), UA_INTLCK_CTRL 0, TAS 1, BUSY TIMEOUT PERIOD unlimited,
 * EXTENDED SELF-TEST COMPLETION TIME 30 s. SWP stays 0: write protection comes from the
 * backstore, reported as WP in the mode parameter header.
 */
const CONTROL: ModePage = {
  page: 0x0a,
  name: "Control",
  lengthBytes: 12,
  changeable: mask(12, { 2: CONTROL_D_SENSE }),
  fill: (device, values, target) => {
    header(target, 0x0a, 12);
    const descriptor = values === "current" ? device.descriptorSense : (device.config.descriptorSense ?? false);
    target[2] = CONTROL_GLTSD | (descriptor ? CONTROL_D_SENSE : 0);
    target[3] = 0x10;
    target[5] = 0x40;
    putU16(target, 8, 0xffff);
    target[11] = 30;
  },
  apply: (device, page) => {
    device.descriptorSense = (page[2]! & CONTROL_D_SENSE) !== 0;
  },
};

/** Informational exceptions control (SPC-4 7.5.11): no exception reporting, nothing changeable. */
const INFORMATIONAL_EXCEPTIONS: ModePage = {
  page: 0x1c,
  name: "Informational Exceptions Control",
  lengthBytes: 12,
  changeable: mask(12, {}),
  fill: (_device, _values, target) => header(target, 0x1c, 12),
};

export const MODE_PAGES: readonly ModePage[] = [READ_WRITE_ERROR_RECOVERY, CACHING, CONTROL, INFORMATIONAL_EXCEPTIONS];

export function modePage(page: number): ModePage | undefined {
  return MODE_PAGES.find((entry) => entry.page === page);
}
