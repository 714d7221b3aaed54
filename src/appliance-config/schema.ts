// The declarative config (/etc/tcmu-appliance.toml) and the `create` command share these zod
// schemas: one definition of what a device and an export may be. Keys are snake_case as they
// appear in the file; the parsed result is turned into camelCase specs by spec.ts.
import { z } from "zod";
import { FILE_IO_MODES, type FileIoMode } from "../../backstores/file/file-io.ts";
import { DATA_PLANE_THREADS_MAX, POLL_US_MAX } from "../data-plane/settings.ts";
import { DevConfigError, parseDevConfig } from "../config/dev-config.ts";
import { parseSizeBytes } from "../config/size.ts";
import { DEFAULT_SUBTYPE } from "../uio/discover.ts";
import { COMPAT_MODES } from "../serve/handler-claims.ts";
import { ALUA_DEFAULT_GROUP } from "../configfs/alua-groups.ts";

/** configfs item names: no '/', and ',' and newlines would split `control` writes. */
export const DEVICE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const SUBTYPE_PATTERN = /^[A-Za-z0-9_.-]+$/;
/** dev_config is kept in a 256-byte kernel buffer, NUL included. */
export const DEV_CONFIG_BYTES_MAX = 255;
export const BLOCK_SIZES_BYTES = [512, 1024, 2048, 4096] as const;
/** RFC 3720 11.1.4: CHAP secrets of at least 96 bits (12 bytes) against offline guessing. */
export const CHAP_SECRET_CHARS_MIN = 12;
/** The kernel's iSCSI auth buffers hold 256 bytes, NUL included. */
export const CHAP_FIELD_CHARS_MAX = 255;
export const CMD_TIME_OUT_SECONDS_MAX = 3600;
/** The kernel's data area limit per device (global default cap is 2 GiB). */
export const MAX_DATA_AREA_MB_MAX = 2048;
export const HW_MAX_SECTORS_MAX = 65535;
/**
 * wwn/vpd_unit_serial: the kernel keeps it in INQUIRY_VPD_SERIAL_LEN (254) bytes, NUL included,
 * and refuses a string of 254 characters or more (EOVERFLOW): 253 at most.
 */
export const UNIT_SERIAL_CHARS_MAX = 253;
/** ALUA target port group ids are 16 bits (SPC-4 6.37); 0 is the kernel's default_tg_pt_gp. */
export const ALUA_GROUP_ID_MAX = 65535;
/** Asymmetric access states a group may be configured in (SPC-4 5.15.2). */
export const ALUA_STATES = ["active-optimized", "active-non-optimized", "standby", "unavailable"] as const;
export type AluaStateName = (typeof ALUA_STATES)[number];

/**
 * Preferred transfer per SCSI command: 512 KiB (hw_max_sectors = this / block size), reported as
 * OPTIMAL TRANSFER LENGTH, which Linux initiators split I/O at. The kernel's default of 128
 * sectors (64 KiB at 512 bytes) splits large I/O into many ring round trips. Larger commands are
 * still accepted up to what the data area holds (the MAXIMUM TRANSFER LENGTH).
 */
export const MAX_TRANSFER_BYTES_DEFAULT = 512 * 1024;
/**
 * Data area per device: 64 MiB holds a full queue (hw_queue_depth 128) of 512 KiB commands.
 * The kernel default, 1 GiB, is reserved address space per device and lets a few busy devices
 * pin the global 2 GiB data-page budget; pages are allocated on use either way.
 */
export const MAX_DATA_AREA_MB_DEFAULT = 64;
/**
 * cmd_time_out: how long a command may sit in the ring before the kernel fails it. 30 s (the
 * kernel default, written explicitly) covers a handler restart (systemd restarts within a
 * second) and matches the Linux initiator's own 30 s SCSI timeout; 0 would let I/O hang
 * forever behind a dead handler.
 */
export const CMD_TIME_OUT_SECONDS_DEFAULT = 30;

export function defaultHwMaxSectors(blockSizeBytes: number): number {
  return MAX_TRANSFER_BYTES_DEFAULT / blockSizeBytes;
}

// RFC 3720 3.2.6.3.1: iqn.yyyy-mm.reversed.domain[:unique]; naa./eui. for initiators too.
const IQN_PATTERN = /^iqn\.\d{4}-\d{2}\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[^\s,/]+)?$/;
const INITIATOR_PATTERN = /^(iqn\.\d{4}-\d{2}\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[^\s,/]+)?|eui\.[0-9a-f]{16}|naa\.[0-9a-f]{16}([0-9a-f]{16})?)$/;
const IPV4_PORTAL = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/;
const IPV6_PORTAL = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/;

const iqn = z.string().regex(IQN_PATTERN, "is not an iSCSI qualified name (iqn.YYYY-MM.reversed.domain[:name], lower case)");
const initiatorName = z.string().regex(INITIATOR_PATTERN, "is not an initiator name (iqn.…, eui.<16 hex> or naa.<16 or 32 hex>)");
const chapField = (what: string) =>
  z
    .string()
    .min(1, `${what} is empty`)
    .max(CHAP_FIELD_CHARS_MAX, `${what} is longer than ${CHAP_FIELD_CHARS_MAX} characters`)
    .regex(/^[\x21-\x7e]+$/, `${what} must be printable ASCII without spaces`);
const chapSecret = (what: string) =>
  chapField(what).refine((text) => text.length >= CHAP_SECRET_CHARS_MIN, {
    message: `${what} must be at least ${CHAP_SECRET_CHARS_MIN} characters (RFC 3720 asks for 96 bits)`,
  });

export const portal = z.string().refine(isPortal, "is not an address:port portal (e.g. 0.0.0.0:3260 or [::]:3260)");

function isPortal(text: string): boolean {
  const v4 = IPV4_PORTAL.exec(text);
  if (v4 !== null) return v4.slice(1, 5).every((octet) => Number(octet) <= 255) && validPort(v4[5]!);
  const v6 = IPV6_PORTAL.exec(text);
  return v6 !== null && validPort(v6[2]!);
}

function validPort(text: string): boolean {
  const port = Number(text);
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

export const sizeValue = z.unknown().transform((value, context) => {
  if (value === undefined) {
    context.addIssue({ code: "invalid_type", expected: "string", message: "missing (required)" });
    return z.NEVER;
  }
  const bytes = typeof value === "number" ? (Number.isSafeInteger(value) ? value : undefined) : typeof value === "string" ? parseSizeBytes(value) : undefined;
  if (bytes === undefined || bytes <= 0) {
    context.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not a size (bytes, or a number with K, M, G or T)` });
    return z.NEVER;
  }
  return bytes;
});

export const backstoreValue = z.string().transform((text, context) => {
  if (/[,\n]/.test(text)) {
    context.addIssue({ code: "custom", message: "may not contain ',' or a newline (configfs splits control writes there)" });
    return z.NEVER;
  }
  try {
    parseDevConfig(text);
  } catch (error) {
    if (!(error instanceof DevConfigError)) throw error;
    context.addIssue({ code: "custom", message: error.message });
    return z.NEVER;
  }
  return text;
});

export const unitSerialValue = z
  .string()
  .min(1, "is empty")
  .max(UNIT_SERIAL_CHARS_MAX, `is longer than ${UNIT_SERIAL_CHARS_MAX} characters (the kernel's VPD unit serial buffer)`)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

/**
 * An ALUA target port group: this gateway's (an export's `alua`) or another gateway's
 * (`alua_peers`). Its name becomes a configfs item under the device's alua/ directory.
 */
export const aluaGroupSchema = z.strictObject({
  group: z
    .string()
    .regex(DEVICE_NAME_PATTERN, "is not a group name (letters, digits, '_', '.', '-'; 64 at most)")
    .refine((name) => name !== ALUA_DEFAULT_GROUP, `${ALUA_DEFAULT_GROUP} is the kernel's own group; choose another name`),
  id: z
    .number()
    .int("must be a whole number")
    .min(1, `must be 1 to ${ALUA_GROUP_ID_MAX} (0 is the kernel's ${ALUA_DEFAULT_GROUP})`)
    .max(ALUA_GROUP_ID_MAX, `must be 1 to ${ALUA_GROUP_ID_MAX}`),
  state: z.enum(ALUA_STATES, { error: () => `must be one of ${ALUA_STATES.join(", ")}` }).default("active-optimized"),
  preferred: z.boolean().default(false),
});

const loopExport = z.strictObject({ fabric: z.literal("loop"), alua: aluaGroupSchema.optional() });

const iscsiExport = z
  .strictObject({
    fabric: z.literal("iscsi"),
    iqn: iqn.optional(),
    portal: portal.default("0.0.0.0:3260"),
    chap_user: chapField("chap_user").optional(),
    chap_password: chapSecret("chap_password").optional(),
    chap_mutual_user: chapField("chap_mutual_user").optional(),
    chap_mutual_password: chapSecret("chap_mutual_password").optional(),
    initiators: z.array(initiatorName).default([]),
    allow_anyone: z.boolean().default(false),
    alua: aluaGroupSchema.optional(),
  })
  .superRefine((value, context) => {
    const issue = (path: string, message: string) => context.addIssue({ code: "custom", path: [path], message });
    if ((value.chap_user === undefined) !== (value.chap_password === undefined)) {
      issue(value.chap_user === undefined ? "chap_user" : "chap_password", "chap_user and chap_password go together");
    }
    if ((value.chap_mutual_user === undefined) !== (value.chap_mutual_password === undefined)) {
      issue(value.chap_mutual_user === undefined ? "chap_mutual_user" : "chap_mutual_password", "chap_mutual_user and chap_mutual_password go together");
    }
    if (value.chap_mutual_user !== undefined && value.chap_user === undefined) {
      issue("chap_mutual_user", "mutual CHAP needs chap_user and chap_password as well");
    }
    const guarded = value.chap_user !== undefined || value.initiators.length > 0;
    if (value.allow_anyone && guarded) {
      issue("allow_anyone", "cannot be combined with CHAP or initiators: it opens the export to every initiator");
    }
    if (!value.allow_anyone && !guarded) {
      issue("allow_anyone", "an iSCSI export needs chap_user/chap_password, initiators, or allow_anyone = true to be open to everyone with write access");
    }
    if (new Set(value.initiators).size !== value.initiators.length) issue("initiators", "lists an initiator twice");
  });

export const exportSchema = z.discriminatedUnion("fabric", [loopExport, iscsiExport], {
  error: (issue) => (issue.code === "invalid_union" ? 'fabric must be "loop" or "iscsi"' : undefined),
});

export const deviceSchema = z
  .strictObject({
    backstore: backstoreValue,
    size: sizeValue,
    block_size: z
      .number()
      .refine((value) => (BLOCK_SIZES_BYTES as readonly number[]).includes(value), `must be one of ${BLOCK_SIZES_BYTES.join(", ")}`)
      .default(512),
    write_cache: z.boolean().default(false),
    hw_max_sectors: z.number().int("must be a whole number").min(1).max(HW_MAX_SECTORS_MAX).optional(),
    max_data_area_mb: z.number().int("must be a whole number").min(1).max(MAX_DATA_AREA_MB_MAX).optional(),
    cmd_time_out: z.number().int("must be a whole number").min(0).max(CMD_TIME_OUT_SECONDS_MAX).optional(),
    /** wwn/vpd_unit_serial: gateways exporting one image give it the same serial (multipath). */
    serial: unitSerialValue.optional(),
    exports: z.array(exportSchema).default([]),
    /** The other gateways' groups, reported beside this gateway's own. */
    alua_peers: z.array(aluaGroupSchema).default([]),
  })
  .superRefine((value, context) => {
    if (value.size % value.block_size !== 0) {
      context.addIssue({ code: "custom", path: ["size"], message: `${value.size} bytes is not a multiple of block_size ${value.block_size}` });
    }
    const transferBytes = (value.hw_max_sectors ?? defaultHwMaxSectors(value.block_size)) * value.block_size;
    const dataAreaBytes = (value.max_data_area_mb ?? MAX_DATA_AREA_MB_DEFAULT) * 1024 * 1024;
    if (transferBytes > dataAreaBytes) {
      context.addIssue({
        code: "custom",
        path: [value.hw_max_sectors === undefined ? "max_data_area_mb" : "hw_max_sectors"],
        message: `one ${transferBytes}-byte command would not fit the ${dataAreaBytes}-byte data area (hw_max_sectors × block_size ≤ max_data_area_mb MiB)`,
      });
    }
    if (value.exports.filter((entry) => entry.fabric === "loop").length > 1) {
      context.addIssue({ code: "custom", path: ["exports"], message: "lists more than one loop export" });
    }
    checkAluaGroups(value, (path, message) => context.addIssue({ code: "custom", path, message }));
  });

type AluaGroupInput = z.output<typeof aluaGroupSchema>;

/**
 * One device's groups must be one consistent set, as the kernel and every initiator see them:
 * one id per group name and one group per id (the kernel refuses a second group with an id,
 * and REPORT TARGET PORT GROUPS could not tell them apart); peers are other gateways' groups,
 * so never one of this gateway's; peers alone describe nobody's port.
 */
function checkAluaGroups(
  value: { exports: { alua?: AluaGroupInput | undefined }[]; alua_peers: AluaGroupInput[] },
  issue: (path: (string | number)[], message: string) => void,
): void {
  const byName = new Map<string, { group: AluaGroupInput; where: string }>();
  const byId = new Map<number, string>();
  value.exports.forEach((entry, index) => {
    const group = entry.alua;
    if (group === undefined) return;
    const path = ["exports", index, "alua"];
    const same = byName.get(group.group);
    if (same !== undefined) {
      if (same.group.id !== group.id) issue([...path, "id"], `group ${group.group} already has id ${same.group.id} (${same.where})`);
      else if (same.group.state !== group.state) issue([...path, "state"], `group ${group.group} is already ${same.group.state} (${same.where}): a group has one state`);
      else if (same.group.preferred !== group.preferred) issue([...path, "preferred"], `group ${group.group} already has preferred = ${same.group.preferred} (${same.where})`);
      return;
    }
    const owner = byId.get(group.id);
    if (owner !== undefined) issue([...path, "id"], `${group.id} is already the id of group ${owner}`);
    byName.set(group.group, { group, where: `exports[${index}]` });
    byId.set(group.id, group.group);
  });
  const localCount = byName.size;
  value.alua_peers.forEach((peer, index) => {
    const path = ["alua_peers", index];
    const same = byName.get(peer.group);
    if (same !== undefined) {
      issue([...path, "group"], same.where.startsWith("exports") ? `${peer.group} is this gateway's own group (${same.where}), not a peer's` : `lists group ${peer.group} twice`);
    }
    const owner = byId.get(peer.id);
    if (owner !== undefined) issue([...path, "id"], `${peer.id} is already the id of group ${owner}`);
    if (same === undefined) byName.set(peer.group, { group: peer, where: `alua_peers[${index}]` });
    if (owner === undefined) byId.set(peer.id, peer.group);
  });
  if (value.alua_peers.length > 0 && localCount === 0) {
    issue(["alua_peers"], "needs an export with alua: the peers' groups are reported beside this gateway's own group");
  }
}

const listen = z
  .string()
  .refine((text) => text === "off" || isPortal(text), 'is not an address:port to listen on (e.g. 127.0.0.1:9540), or "off"');

export const serveSchema = z.strictObject({
  subtype: z.string().regex(SUBTYPE_PATTERN, "letters, digits, '_', '.', '-' only").optional(),
  allow_roots: z.array(z.string().startsWith("/", "must be an absolute path")).optional(),
  metrics_listen: listen.optional(),
  log_level: z.enum(["error", "warn", "info", "debug"]).optional(),
  log_format: z.enum(["pretty", "json"]).optional(),
  data_plane_threads: z.number().int("must be a whole number").min(1).max(DATA_PLANE_THREADS_MAX).optional(),
  poll_us: z.number().int("must be a whole number").min(0).max(POLL_US_MAX).optional(),
  file_io: z.enum(FILE_IO_MODES as [FileIoMode, ...FileIoMode[]]).optional(),
  /** "tcmu-runner": also serve devices made for tcmu-runner's handlers (serve --compat). */
  compat: z.enum(COMPAT_MODES).optional(),
});

export const fileSchema = z
  .strictObject({
    serve: serveSchema.default({}),
    devices: z.record(z.string().regex(DEVICE_NAME_PATTERN, "is not a device name (letters, digits, '_', '.', '-'; 64 at most)"), deviceSchema).default({}),
  })
  .superRefine((value, context) => {
    const subtype = value.serve.subtype ?? DEFAULT_SUBTYPE;
    const iqnOwners = new Map<string, string>();
    for (const [name, device] of Object.entries(value.devices)) {
      if (new TextEncoder().encode(`${subtype}/${device.backstore}`).length > DEV_CONFIG_BYTES_MAX) {
        context.addIssue({ code: "custom", path: ["devices", name, "backstore"], message: `"${subtype}/${device.backstore}" is longer than ${DEV_CONFIG_BYTES_MAX} bytes` });
      }
      device.exports.forEach((entry, index) => {
        if (entry.fabric !== "iscsi" || entry.iqn === undefined) return;
        const owner = iqnOwners.get(entry.iqn);
        if (owner !== undefined) context.addIssue({ code: "custom", path: ["devices", name, "exports", index, "iqn"], message: `is already used by device ${owner}` });
        iqnOwners.set(entry.iqn, name);
      });
    }
  });

export type FileInput = z.input<typeof fileSchema>;
export type ParsedFile = z.output<typeof fileSchema>;
export type ParsedDevice = z.output<typeof deviceSchema>;
export type ParsedExport = z.output<typeof exportSchema>;
