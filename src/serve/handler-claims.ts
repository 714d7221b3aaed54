// Which TCMU subtypes this serve claims, and how each one's config string becomes a backstore.
// Normally one: ours (`appliance/<backstore>`). With `--compat tcmu-runner` also the subtypes
// tcmu-runner's handlers use, with their config strings read as tcmu-runner reads them, so
// devices that targetcli or ceph-iscsi made for tcmu-runner (user:file, user:qcow, user:rbd) are served
// unchanged after swapping the daemon.

export const COMPAT_MODES = ["tcmu-runner"] as const;
export type CompatMode = (typeof COMPAT_MODES)[number];

interface ForeignHandler {
  /** Our backstore config for the handler's config path (the dev_config after "<subtype>/"). */
  backstoreConfig(configPath: string): string;
  /** Where our serving differs from the handler's, said once per device at attach and in list. */
  difference?: string;
}

/**
 * tcmu-runner's handlers: file_example and qcow take the config path as the image path, nothing
 * else; rbd takes "<pool>/<image>[@snap][;osd_op_timeout=N][;conf=PATH][;id=CLIENT]", which our
 * rbd grammar reads as it is.
 */
const TCMU_RUNNER_HANDLERS: ReadonlyMap<string, ForeignHandler> = new Map([
  // file_example.c: the path after "file/"; a raw image file, read-write.
  ["file", { backstoreConfig: (configPath) => `file/${configPath}` }],
  // qcow.c: qcow v1, qcow2 or a raw file, told apart by the content — what our bare path does.
  [
    "qcow",
    {
      backstoreConfig: (configPath) => configPath,
      difference: "tcmu-runner's qcow handler writes qcow/qcow2 images; here they are served read-only (writes get DATA PROTECT); raw images stay writable",
    },
  ],
  // rbd.c: the pool/image string with its options.
  ["rbd", { backstoreConfig: (configPath) => `rbd/${configPath}` }],
]);

export class HandlerClaims {
  /** Our own subtype (`appliance` unless serve --subtype says otherwise). */
  readonly subtype: string;
  readonly compat: CompatMode | undefined;
  readonly #foreign: ReadonlyMap<string, ForeignHandler>;

  constructor(subtype: string, compat?: CompatMode) {
    this.subtype = subtype;
    this.compat = compat;
    this.#foreign = compat === "tcmu-runner" ? TCMU_RUNNER_HANDLERS : new Map();
    if (this.#foreign.has(subtype)) throw new Error(`subtype "${subtype}" is one --compat ${compat} claims for tcmu-runner's handler of that name`);
  }

  /** Every subtype served, ours first. */
  get subtypes(): string[] {
    return [this.subtype, ...this.#foreign.keys()];
  }

  claims(subtype: string): boolean {
    return subtype === this.subtype || this.#foreign.has(subtype);
  }

  /** The backstore config (our grammar, src/config/dev-config.ts) a claimed device is opened from. */
  backstoreConfig(subtype: string, configPath: string): string {
    const foreign = this.#foreign.get(subtype);
    return foreign === undefined ? configPath : foreign.backstoreConfig(configPath);
  }

  /** How serving a `subtype` device differs from the daemon it was made for; undefined: it does not. */
  difference(subtype: string): string | undefined {
    return this.#foreign.get(subtype)?.difference;
  }
}
