// The opcode table: one row per command (or per service action), the only place that says which
// commands exist. Dispatch, REPORT SUPPORTED OPERATION CODES, the 3PC bit of INQUIRY and the
// coverage tests all read it.
import { scsiCommandSize } from "../ring/command.ts";
import type { CommandCatalog, OpcodeRow } from "./logical-unit.ts";

// The row type is the contract between a unit and its commands, so it lives with LogicalUnit;
// the command files keep importing it from here, next to the table.
export type { CommandHandler, OpcodeRow } from "./logical-unit.ts";

/** Opcodes whose byte 1 (bits 4..0) selects a service action (SPC-4 4.2.5.1). */
export const SERVICE_ACTION_OPCODES: ReadonlySet<number> = new Set([0x83, 0x84, 0x9e, 0x9f, 0xa3, 0xa4]);

export function serviceActionOf(cdb: Uint8Array): number {
  return cdb[1]! & 0x1f;
}

/** CONTROL byte NACA bit (SAM-5 5.2): ACA is not supported, so a set bit is a bad field. */
export const CONTROL_NACA = 0x04;

export class OpcodeTable implements CommandCatalog {
  readonly rows: readonly OpcodeRow[];
  readonly #byOpcode: (OpcodeRow | undefined)[] = new Array(256);
  readonly #byServiceAction = new Map<number, OpcodeRow>();
  readonly #opcodes = new Set<number>();

  constructor(rows: readonly OpcodeRow[]) {
    this.rows = rows;
    for (const row of rows) {
      checkRow(row);
      this.#opcodes.add(row.opcode);
      if (row.serviceAction === undefined) {
        if (this.#byOpcode[row.opcode] !== undefined) throw new Error(`${row.name}: opcode listed twice`);
        this.#byOpcode[row.opcode] = row;
      } else {
        const key = (row.opcode << 8) | row.serviceAction;
        if (this.#byServiceAction.has(key)) throw new Error(`${row.name}: service action listed twice`);
        this.#byServiceAction.set(key, row);
      }
    }
  }

  lookup(cdb: Uint8Array): OpcodeRow | undefined {
    const opcode = cdb[0]!;
    if (!SERVICE_ACTION_OPCODES.has(opcode)) return this.#byOpcode[opcode];
    return this.#byServiceAction.get((opcode << 8) | serviceActionOf(cdb));
  }

  /** The row for an opcode (and service action, for opcodes that have them). */
  rowFor(opcode: number, serviceAction: number): OpcodeRow | undefined {
    if (!SERVICE_ACTION_OPCODES.has(opcode)) return serviceAction === 0 ? this.#byOpcode[opcode] : undefined;
    return this.#byServiceAction.get((opcode << 8) | serviceAction);
  }

  /** True when the opcode exists with some service action (so a wrong one is a bad field). */
  hasOpcode(opcode: number): boolean {
    return this.#opcodes.has(opcode);
  }
}

function checkRow(row: OpcodeRow): void {
  if (row.usage[0] !== row.opcode) throw new Error(`${row.name}: usage data must start with the opcode`);
  // The engine sizes CDBs by opcode group (scsi_command_size); a row that disagrees would read
  // bytes the kernel never sent.
  const cdbLength = scsiCommandSize(Uint8Array.of(row.opcode));
  if (row.usage.length !== cdbLength) throw new Error(`${row.name}: usage data is ${row.usage.length} bytes, CDB is ${cdbLength}`);
  const hasServiceAction = SERVICE_ACTION_OPCODES.has(row.opcode);
  if (hasServiceAction !== (row.serviceAction !== undefined)) {
    throw new Error(`${row.name}: opcode 0x${row.opcode.toString(16)} ${hasServiceAction ? "needs" : "takes no"} service action`);
  }
  if (row.serviceAction !== undefined && (row.usage[1]! & 0x1f) !== row.serviceAction) {
    throw new Error(`${row.name}: usage byte 1 must carry the service action`);
  }
}
