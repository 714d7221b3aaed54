// The <path> part of a TCMU dev_config (everything after "<subtype>/"), which picks and
// configures the backstore:
//
//   ram[/label][;max=SIZE]                      sparse RAM disk, restart-proof, memory cap
//   file/<absolute path>[;ro][;direct][;sync]   raw image file or block device
//   qcow2/<absolute path>[;snapshot=NAME]       qcow2 image (read-only)
//   <absolute path>[;options]                   qcow2 or raw, told apart by the file's content
//   rbd/<pool>/<image>[@snap][;snap=NAME][;ns=NAMESPACE][;conf=PATH][;id=CLIENT][;ro]
//                                               a Ceph RBD image (tcmu-runner's rbd strings too,
//                                               ;osd_op_timeout=SECONDS included)
//
// Options follow as ";key=value" or ";flag" because configfs splits `control` at ','. Parsing is
// pure (no file system access); open.ts checks allowed roots and opens. Every error names the
// part of the string that is wrong.
import { posix } from "node:path";
import { z } from "zod";
import { DevConfigError, RBD_CLIENT_ID_DEFAULT, RBD_CONF_DEFAULT, type DevConfig, type RbdDevConfig } from "./dev-config-model.ts";
import { parseSizeBytes } from "./size.ts";

export {
  DevConfigError,
  RBD_CLIENT_ID_DEFAULT,
  RBD_CONF_DEFAULT,
  type DetectDevConfig,
  type DevConfig,
  type FileDevConfig,
  type Qcow2DevConfig,
  type RamDevConfig,
  type RbdDevConfig,
} from "./dev-config-model.ts";

/** Pool, namespace, image and snapshot names as Ceph allows them, minus '/', '@' and ';'. */
const RBD_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$/;

const GRAMMAR_HINT = "expected ram[/label], file/<absolute path>, qcow2/<absolute path>, rbd/<pool>/<image> or an absolute path";
const LABEL_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

const flag = (name: string) => z.literal(true, { error: `is a flag and takes no value (write ;${name})` }).optional();
const sizeOption = z
  .string({ error: "needs a size, e.g. max=2G" })
  .transform((text, context) => {
    const bytes = parseSizeBytes(text);
    if (bytes === undefined || bytes === 0) {
      context.addIssue({ code: "custom", message: `"${text}" is not a size (bytes, or a number with K, M, G or T)` });
      return z.NEVER;
    }
    return bytes;
  })
  .optional();
const snapshotOption = z
  .string({ error: "needs a snapshot name or id, e.g. snapshot=base" })
  .min(1, "needs a snapshot name or id, e.g. snapshot=base")
  .optional();

const OPTION_SCHEMAS = {
  ram: z.strictObject({ max: sizeOption }),
  file: z.strictObject({ ro: flag("ro"), direct: flag("direct"), sync: flag("sync") }),
  // qcow2 is only served read-only; ;ro is accepted for symmetry.
  qcow2: z.strictObject({ snapshot: snapshotOption, ro: flag("ro") }),
  detect: z.strictObject({ ro: flag("ro"), direct: flag("direct"), sync: flag("sync"), snapshot: snapshotOption }),
  rbd: z.strictObject({
    snap: z.string({ error: "needs a snapshot name, e.g. snap=base" }).regex(RBD_NAME_PATTERN, "is not a snapshot name").optional(),
    ns: z.string({ error: "needs a namespace, e.g. ns=tenant1" }).regex(RBD_NAME_PATTERN, "is not a namespace name").optional(),
    conf: z.string({ error: "needs a path, e.g. conf=/etc/ceph/ceph.conf" }).startsWith("/", "must be an absolute path").optional(),
    id: z.string({ error: "needs a client id, e.g. id=admin" }).regex(/^[A-Za-z0-9._-]{1,64}$/, "is not a cephx client id").optional(),
    ro: flag("ro"),
    osd_op_timeout: z.coerce
      .number({ error: "needs seconds, e.g. osd_op_timeout=30" })
      .int("must be a whole number of seconds")
      .min(1, "must be at least 1 second")
      .max(3600, "must be at most 3600 seconds")
      .optional(),
  }),
} as const;

type RawOptions = Record<string, string | true>;

export function parseDevConfig(devConfigPath: string): DevConfig {
  const [target = "", ...optionTokens] = devConfigPath.split(";");
  const raw = splitOptions(devConfigPath, optionTokens);
  if (target === "ram" || target.startsWith("ram/")) {
    const label = target === "ram" ? undefined : target.slice("ram/".length);
    if (label !== undefined && !LABEL_PATTERN.test(label)) {
      throw new DevConfigError(devConfigPath, `label "${label}"`, "a RAM label is 1 to 64 letters, digits, '.', '_' or '-'");
    }
    const options = validateOptions(devConfigPath, "ram", raw, OPTION_SCHEMAS.ram);
    return { kind: "ram", ...(label === undefined ? {} : { label }), ...(options.max === undefined ? {} : { maxBytes: options.max }) };
  }
  if (target.startsWith("file/")) {
    const path = absolutePath(devConfigPath, "file", target.slice("file/".length));
    const options = validateOptions(devConfigPath, "file", raw, OPTION_SCHEMAS.file);
    return { kind: "file", path, readOnly: options.ro === true, direct: options.direct === true, sync: options.sync === true };
  }
  if (target.startsWith("qcow2/")) {
    const path = absolutePath(devConfigPath, "qcow2", target.slice("qcow2/".length));
    const options = validateOptions(devConfigPath, "qcow2", raw, OPTION_SCHEMAS.qcow2);
    return { kind: "qcow2", path, ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }) };
  }
  if (target.startsWith("rbd/")) return parseRbd(devConfigPath, target.slice("rbd/".length), raw);
  if (target.startsWith("/")) {
    const path = absolutePath(devConfigPath, "image", target);
    const options = validateOptions(devConfigPath, "an image", raw, OPTION_SCHEMAS.detect);
    return {
      kind: "detect",
      path,
      readOnly: options.ro === true,
      direct: options.direct === true,
      sync: options.sync === true,
      ...(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
    };
  }
  if (target === "") throw new DevConfigError(devConfigPath, "backstore", `missing; ${GRAMMAR_HINT}`);
  const word = target.split("/")[0]!;
  throw new DevConfigError(devConfigPath, `backstore "${word}"`, `unknown; ${GRAMMAR_HINT}`);
}

/** rbd/<pool>/<image>[@snap] plus options; "@snap" and ";snap=" are one setting, given once. */
function parseRbd(devConfigPath: string, target: string, raw: RawOptions): RbdDevConfig {
  const parts = target.split("/");
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new DevConfigError(devConfigPath, `rbd "${target}"`, "expected rbd/<pool>/<image>");
  }
  const pool = parts[0]!;
  const [image = "", atSnapshot] = parts[1]!.split("@");
  if (!RBD_NAME_PATTERN.test(pool)) throw new DevConfigError(devConfigPath, `pool "${pool}"`, "is not a pool name");
  if (!RBD_NAME_PATTERN.test(image)) throw new DevConfigError(devConfigPath, `image "${image}"`, "is not an image name");
  const options = validateOptions(devConfigPath, "rbd", raw, OPTION_SCHEMAS.rbd);
  if (atSnapshot !== undefined && !RBD_NAME_PATTERN.test(atSnapshot)) throw new DevConfigError(devConfigPath, `snapshot "${atSnapshot}"`, "is not a snapshot name");
  if (atSnapshot !== undefined && options.snap !== undefined) throw new DevConfigError(devConfigPath, `option "snap"`, "given twice (as @snap and ;snap=)");
  const snapshot = atSnapshot ?? options.snap;
  return {
    kind: "rbd",
    pool,
    image,
    ...(snapshot === undefined ? {} : { snapshot }),
    ...(options.ns === undefined ? {} : { namespace: options.ns }),
    confPath: options.conf ?? RBD_CONF_DEFAULT,
    clientId: options.id ?? RBD_CLIENT_ID_DEFAULT,
    readOnly: options.ro === true || snapshot !== undefined,
    ...(options.osd_op_timeout === undefined ? {} : { osdOpTimeoutSeconds: options.osd_op_timeout }),
  };
}

/** ";key=value" and ";flag" tokens into a record; empty and repeated options are refused. */
function splitOptions(devConfigPath: string, tokens: string[]): RawOptions {
  const options: RawOptions = {};
  for (const token of tokens) {
    if (token === "") throw new DevConfigError(devConfigPath, "options", "empty option (two ';' in a row, or a trailing ';')");
    const equals = token.indexOf("=");
    const key = equals < 0 ? token : token.slice(0, equals);
    if (key === "") throw new DevConfigError(devConfigPath, `option "${token}"`, "has no name before '='");
    if (Object.hasOwn(options, key)) throw new DevConfigError(devConfigPath, `option "${key}"`, "given twice");
    options[key] = equals < 0 ? true : token.slice(equals + 1);
  }
  return options;
}

function validateOptions<Schema extends z.ZodObject>(
  devConfigPath: string,
  backstore: string,
  raw: RawOptions,
  schema: Schema,
): z.output<Schema> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const allowed = Object.keys(schema.shape).join(", ");
    const key = issue.keys[0]!;
    throw new DevConfigError(devConfigPath, `option "${key}"`, `unknown for ${backstore} (options: ${allowed})`);
  }
  const key = String(issue.path[0]);
  const value = raw[key];
  const part = value === true || value === undefined ? `option "${key}"` : `option "${key}=${value}"`;
  throw new DevConfigError(devConfigPath, part, issue.message);
}

/**
 * An absolute path without "." or ".." segments (so allowed-root checks cannot be walked
 * around by spelling); repeated slashes are folded.
 */
function absolutePath(devConfigPath: string, backstore: string, text: string): string {
  if (text === "") throw new DevConfigError(devConfigPath, `${backstore} path`, `missing (e.g. ${backstore}//srv/disk1.img)`);
  if (!text.startsWith("/")) {
    throw new DevConfigError(devConfigPath, `${backstore} path "${text}"`, `must be absolute (write ${backstore}//${text})`);
  }
  const segments = text.split("/");
  if (segments.includes("..") || segments.includes(".")) {
    throw new DevConfigError(devConfigPath, `${backstore} path "${text}"`, "may not contain '.' or '..' segments");
  }
  if (text.includes("\0")) throw new DevConfigError(devConfigPath, `${backstore} path`, "contains a NUL byte");
  const normalized = posix.normalize(text).replace(/^\/+/, "/");
  if (normalized === "/" || normalized.endsWith("/")) {
    throw new DevConfigError(devConfigPath, `${backstore} path "${text}"`, "names a directory, not an image");
  }
  return normalized;
}
