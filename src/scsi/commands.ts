// Every command family's rows, in one list: the opcode table is built from it. A new command is
// a new row in its family's file; dispatch, REPORT SUPPORTED OPERATION CODES and the coverage
// tests follow from here.
import { BLOCK_IO_COMMANDS } from "./block-io.ts";
import { CACHE_COMMANDS } from "./cache.ts";
import { CAPACITY_COMMANDS } from "./capacity.ts";
import { COMPARE_AND_WRITE_COMMANDS } from "./compare-and-write.ts";
import { EXTENDED_COPY_COMMANDS } from "./extended-copy.ts";
import { INQUIRY_COMMANDS } from "./inquiry.ts";
import { LEGACY_COMMANDS } from "./legacy.ts";
import { MODE_COMMANDS } from "./mode.ts";
import { PRIMARY_COMMANDS } from "./primary.ts";
import { PROVISIONING_COMMANDS } from "./provisioning.ts";
import { REPORT_COMMANDS } from "./report-opcodes.ts";
import type { OpcodeRow } from "./table.ts";
import { TARGET_PORT_GROUP_COMMANDS } from "./target-port-groups.ts";
import { VERIFY_COMMANDS } from "./verify.ts";

export const ALL_COMMANDS: readonly OpcodeRow[] = [
  ...PRIMARY_COMMANDS,
  ...INQUIRY_COMMANDS,
  ...MODE_COMMANDS,
  ...REPORT_COMMANDS,
  ...TARGET_PORT_GROUP_COMMANDS,
  ...CAPACITY_COMMANDS,
  ...BLOCK_IO_COMMANDS,
  ...VERIFY_COMMANDS,
  ...CACHE_COMMANDS,
  ...PROVISIONING_COMMANDS,
  ...COMPARE_AND_WRITE_COMMANDS,
  ...EXTENDED_COPY_COMMANDS,
  ...LEGACY_COMMANDS,
];
