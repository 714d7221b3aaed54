// `serve` as a whole: one instance lock, netlink events (with the sysfs scan as fallback), the
// devices it attaches, the config file's devices created when missing, the HTTP endpoint, and
// an orderly stop. The CLI (src/cli/serve.ts) parses flags and wires signals to this.
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "bun";
import { emptyConfig, loadConfigFile, type ApplianceConfig } from "../appliance-config/load.ts";
import type { ConfigfsIo } from "../configfs/io.ts";
import { ensureTargetCore, type KernelSetup } from "../configfs/kernel-setup.ts";
import { cachedDaemonFinder, type OtherDaemon } from "../configfs/other-daemons.ts";
import { loopDiskPath } from "../configfs/loop-export.ts";
import { deviceDir, ensureExports, provisionDevice, type Provisioner } from "../configfs/provision.ts";
import { StateStore } from "../configfs/state.ts";
import { PROVISIONING_HBA_ID } from "../configfs/user-device.ts";
import { ENOENT } from "../libc/errno.ts";
import { parseListen, startMetricsServer } from "../metrics/http.ts";
import type { FaultKind } from "./attached-device.ts";
import { renderMetrics } from "../metrics/prometheus.ts";
import { NetlinkRequestError } from "../netlink/socket.ts";
import type { SystemRoots } from "../uio/discover.ts";
import { DataPlanePool } from "../data-plane/pool.ts";
import type { DataPlaneSettings } from "../data-plane/settings.ts";
import { DeviceSet } from "./device-set.ts";
import { messageOf, type ServeLog } from "./errors.ts";
import { EventHandler } from "./event-handler.ts";
import { HandlerClaims, type CompatMode } from "./handler-claims.ts";
import { acquireInstanceLock, type InstanceLock } from "./instance-lock.ts";
import { failStaleNetlinkWaits, NetlinkControl } from "./netlink-control.ts";
import { sdNotify } from "./sd-notify.ts";
import { RecentWarnings } from "../status/recent-warnings.ts";
import { startServeStatus } from "../status/serve-status.ts";

/** Without netlink, sysfs is scanned this often for new devices. */
export const POLL_INTERVAL_MS = 2000;
/** With netlink, a scan still runs this often: it catches events lost to an overflow unnoticed. */
export const SAFETY_SCAN_INTERVAL_MS = 10_000;
/** How long serve looks for the /dev/sdX of a config device's tcm_loop export to name it. */
const LOOP_DISK_WAIT_MS = 30_000;
/** A stop waits this long for a running scan before it goes on without it. */
export const STOP_SCAN_WAIT_MS = 10_000;

export interface ApplianceOptions {
  subtype: string;
  /** serve --compat tcmu-runner: also claim tcmu-runner's handlers' subtypes (file, qcow, rbd). */
  compat?: CompatMode;
  allowedRoots: string[];
  roots: SystemRoots;
  io: ConfigfsIo;
  setup: KernelSetup;
  runDir: string;
  /** The config file to read at start and on reload; undefined: none. */
  configPath: string | undefined;
  /** A config file given by name must exist; the default one may be absent. */
  configRequired: boolean;
  /** "host:port", or "off". */
  metricsListen: string;
  netlink: boolean;
  log: ServeLog;
  ringLog: ServeLog;
  /** Worker threads, busy-poll and file I/O (serve --data-plane-threads, --poll-us, --file-io). */
  dataPlane: DataPlaneSettings;
  /** serve --fault-injection: the metrics listener takes POST /fault-injection/<device> (tests). */
  faultInjection?: boolean;
  /** Other TCMU daemons running now; default: a look at /proc, at most once a second. */
  otherDaemons?: () => OtherDaemon[];
}

export class Appliance {
  readonly devices: DeviceSet;
  readonly state: StateStore;
  readonly provisioner: Provisioner;
  readonly pool: DataPlanePool;
  readonly #options: ApplianceOptions;
  readonly #startedAtSeconds = Date.now() / 1000;
  #stopStatus: () => void = () => {};
  /** serve's latest warnings and errors, for the status page. */
  readonly #warnings = new RecentWarnings();
  #lock: InstanceLock | undefined;
  #netlink: NetlinkControl | undefined;
  #events: EventHandler | undefined;
  #server: Server<undefined> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #config: ApplianceConfig;
  #scanning: Promise<void> = Promise.resolve();
  #overflows = 0;
  #started = false;
  #stopping = false;
  readonly #otherDaemons: () => OtherDaemon[];

  constructor(options: ApplianceOptions) {
    options = { ...options, log: this.#warnings.wrap(options.log, "serve"), ringLog: this.#warnings.wrap(options.ringLog, "ring") };
    this.#options = options;
    this.#config = emptyConfig(options.configPath ?? "");
    this.state = new StateStore(options.runDir);
    this.#otherDaemons = options.otherDaemons ?? cachedDaemonFinder();
    this.provisioner = {
      roots: options.roots,
      io: options.io,
      setup: options.setup,
      state: this.state,
      subtype: options.subtype,
      hbaId: PROVISIONING_HBA_ID,
      findOtherDaemons: this.#otherDaemons,
    };
    this.pool = new DataPlanePool(options.dataPlane, options.ringLog);
    this.devices = new DeviceSet({
      pool: this.pool,
      claims: new HandlerClaims(options.subtype, options.compat),
      allowedRoots: options.allowedRoots,
      roots: options.roots,
      io: options.io,
      log: options.log,
      ringLog: options.ringLog,
      onChange: () => this.#writeServed(),
      otherDaemons: this.#otherDaemons,
    });
  }

  get markerPath(): string {
    return join(this.#options.runDir, "netlink-replies-on");
  }

  get netlinkActive(): boolean {
    return this.#netlink !== undefined;
  }

  async start(): Promise<void> {
    const { log } = this.#options;
    this.#lock = acquireInstanceLock(join(this.#options.runDir, "serve.lock"));
    this.#config = this.#loadConfig();
    if (this.#config.devices.length > 0) await this.#ensureTargetCore();
    if (this.#options.netlink) await this.#openNetlink();
    await this.scan();
    await this.#reconcile(this.#config);
    this.#startMetrics();
    void this.#announceLoopDisks(this.#config);
    this.#timer = setInterval(() => void this.scan(), this.#netlink === undefined ? POLL_INTERVAL_MS : SAFETY_SCAN_INTERVAL_MS);
    this.#started = true;
    const served = this.devices.devices.length;
    log.info(`serving ${served} device(s); ${this.#netlink === undefined ? `polling sysfs every ${POLL_INTERVAL_MS} ms` : "listening for netlink events"}`);
    sdNotify(`READY=1\nSTATUS=serving ${served} device(s)`);
    // Loading, config parsing and the first scan left garbage an idle serve would keep (~1 MB):
    // too little allocation follows for the collector to run by itself.
    Bun.gc(true);
  }

  #loadConfig(): ApplianceConfig {
    const path = this.#options.configPath;
    if (path === undefined) return emptyConfig("");
    if (!this.#options.configRequired && !existsSync(path)) return emptyConfig(path);
    return loadConfigFile(path);
  }

  #ensureTargetCore(): Promise<void> {
    return ensureTargetCore(this.#options.roots, this.#options.io, this.#options.setup);
  }

  /** Netlink up (loading target_core_user if the family is missing), or the sysfs fallback. */
  async #openNetlink(): Promise<void> {
    const { log } = this.#options;
    const options = {
      markerPath: this.markerPath,
      onEvent: (event: Parameters<EventHandler["handle"]>[0]) => void this.#events?.handle(event),
      onOverflow: (drops: number) => {
        this.#overflows += 1;
        log.warn(`netlink events were lost (${drops < 0 ? "ENOBUFS" : `${drops} dropped so far`}); rescanning`);
        void this.scan({ immediate: true });
      },
      onFailed: (reason: string) => log.error(`${reason}; devices are still found by the periodic scan`),
      log,
      otherDaemons: this.#otherDaemons,
    };
    let netlink: NetlinkControl;
    try {
      try {
        netlink = NetlinkControl.open(options);
      } catch (error) {
        if (!(error instanceof NetlinkRequestError && error.errno === ENOENT)) throw error;
        this.#options.setup.modprobe("target_core_user");
        netlink = NetlinkControl.open(options);
      }
    } catch (error) {
      log.warn(`TCM-USER netlink unavailable (${messageOf(error)}): falling back to scanning sysfs every ${POLL_INTERVAL_MS} ms`);
      // Said plainly: without the module no TCMU device can ever appear, so serve would only wait.
      if (!existsSync(join(this.#options.roots.sysfs, "module", "target_core_user"))) {
        log.warn(`no TCMU device can appear on this machine: ${this.#options.setup.hint("target_core_user")}`);
      }
      return;
    }
    this.#netlink = netlink;
    this.devices.replier = netlink;
    this.#events = new EventHandler({
      devices: this.devices,
      replier: netlink,
      log,
      onRemoved: (hbaId, name) => {
        const record = this.state.read().devices[name];
        if (record !== undefined && record.hbaId === hbaId) this.state.forget(name);
      },
      requestScan: () => setTimeout(() => void this.scan(), 100),
      otherDaemons: this.#otherDaemons,
    });
    if (existsSync(this.markerPath)) await this.#recoverFromUncleanExit();
    netlink.enableReplies();
    log.info(`netlink: TCM-USER family ${netlink.familyId}, receive buffer ${netlink.receiveBufferBytes} bytes, SUPP_KERN_CMD_REPLY on`);
  }

  /** A serve died with replies on: answer the ADDED waits it left, then fail every other wait. */
  async #recoverFromUncleanExit(): Promise<void> {
    const { log, io, roots } = this.#options;
    log.warn("a previous serve exited without clearing SUPP_KERN_CMD_REPLY: answering the netlink waits it left");
    await this.devices.answerPendingAdded(true);
    try {
      if (!(await failStaleNetlinkWaits(roots.sysfs, (path, value) => io.writeAttribute(path, value)))) {
        log.warn("the kernel has no block_netlink/reset_netlink parameters: a RECONFIG the previous serve left unanswered stays pending");
      }
    } catch (error) {
      log.warn(`failing stale netlink waits: ${messageOf(error)}`);
    }
  }

  /** One scan at a time; `immediate` answers stuck ADDED events without the grace period. */
  scan(options: { immediate?: boolean } = {}): Promise<void> {
    this.#scanning = this.#scanning.then(() => this.devices.scan(options)).catch((error: unknown) => this.#options.log.error(`scan failed: ${messageOf(error)}`));
    return this.#scanning;
  }

  /** SIGHUP: read the config file again and create what it declares that is missing. */
  async reload(): Promise<void> {
    const { log } = this.#options;
    if (!this.#started || this.#stopping) {
      log.warn("SIGHUP ignored: serve is still starting or already stopping");
      return;
    }
    let config: ApplianceConfig;
    try {
      config = this.#loadConfig();
    } catch (error) {
      for (const line of messageOf(error).split("\n")) log.error(line);
      log.error("config not reloaded: the previous one stays in effect");
      return;
    }
    this.#config = config;
    log.info(`reloaded ${config.path || "(no config file)"}: ${config.devices.length} device(s) declared`);
    await this.#reconcile(config);
  }

  /**
   * Says which /dev/sdX each config device's tcm_loop export became (the quick start ends on
   * it), as soon as the kernel has probed the disk; gives up quietly after LOOP_DISK_WAIT_MS.
   */
  async #announceLoopDisks(config: ApplianceConfig): Promise<void> {
    const { log, roots, io } = this.#options;
    const records = this.state.read().devices;
    const pending = config.devices.flatMap((spec) =>
      (records[spec.name]?.exports ?? []).flatMap((made) => (made.fabric === "loop" ? [{ name: spec.name, wwn: made.wwn }] : [])),
    );
    const deadline = Date.now() + LOOP_DISK_WAIT_MS;
    while (pending.length > 0 && Date.now() < deadline && !this.#stopping) {
      for (const [index, { name, wwn }] of [...pending.entries()].reverse()) {
        const disk = await loopDiskPath(roots, io, wwn);
        if (disk === undefined) continue;
        log.info(`${name} is ${disk} (tcm_loop ${wwn})`);
        pending.splice(index, 1);
      }
      if (pending.length > 0) await Bun.sleep(200);
    }
  }

  async #reconcile(config: ApplianceConfig): Promise<void> {
    const { log, io } = this.#options;
    if (config.devices.length === 0) return;
    await this.#ensureTargetCore();
    const state = this.state.read();
    for (const spec of config.devices) {
      const dir = deviceDir(this.provisioner, spec.name);
      const record = state.devices[spec.name];
      try {
        if (!(await io.exists(dir))) {
          if (record !== undefined) this.state.forget(spec.name);
          await provisionDevice(this.provisioner, spec, "config");
          log.info(`${spec.name}: created from ${config.path}`);
        } else if (record === undefined) {
          log.warn(`${spec.name}: ${dir} exists but was not created by tcmu-appliance; left alone`);
        } else {
          const created = await ensureExports(this.provisioner, record, spec);
          if (created > 0) log.info(`${spec.name}: ${created} missing export(s) created from ${config.path}`);
          if (record.backstore !== spec.backstore || record.sizeBytes !== spec.sizeBytes) {
            log.warn(`${spec.name}: backstore or size differ from ${config.path}; an existing device is not changed (remove it, or write attrib/dev_size)`);
          }
        }
      } catch (error) {
        log.error(`${spec.name}: ${messageOf(error)}`);
      }
    }
    for (const record of Object.values(this.state.read().devices)) {
      if (record.source === "config" && !config.devices.some((spec) => spec.name === record.name)) {
        log.warn(`${record.name} is no longer in ${config.path}; left in place (tcmu-appliance remove ${record.name} deletes it)`);
      }
    }
  }

  #startMetrics(): void {
    const listen = this.#options.metricsListen;
    if (listen === "off") return;
    const status = startServeStatus({ devices: this.devices, state: this.state, serve: () => this.health(), warnings: this.#warnings, startedAtMs: this.#startedAtSeconds * 1000 });
    try {
      this.#server = startMetricsServer(parseListen(listen), {
        metricsText: () => this.metricsText(),
        health: () => this.health(),
        status: (query) => status.report(query),
        injectFault: this.#options.faultInjection === true ? (name, kind) => this.#injectFault(name, kind) : undefined,
      });
      this.#stopStatus = () => status.stop();
      this.#options.log.info(`status page on http://${listen}/ (metrics on /metrics, health on /healthz, JSON on /api/status)`);
    } catch (error) {
      status.stop();
      this.#options.log.error(`metrics endpoint ${listen} not started: ${messageOf(error)}`);
    }
  }

  async #injectFault(deviceName: string, kind: FaultKind): Promise<boolean> {
    const device = this.devices.devices.find((candidate) => candidate.info.deviceName === deviceName);
    if (device === undefined) return false;
    this.#options.log.warn(`${device.info.uio} ${deviceName}: injecting a ${kind} fault (--fault-injection)`);
    await device.injectFault(kind);
    return true;
  }

  get metricsPort(): number | undefined {
    return this.#server?.port;
  }

  metricsText(): string {
    return renderMetrics(this.devices.devices, {
      netlinkEvents: { added: this.#events?.counters.added ?? 0, removed: this.#events?.counters.removed ?? 0, reconfig: this.#events?.counters.reconfig ?? 0 },
      reconfigsVetoed: this.#events?.counters.vetoed ?? 0,
      netlinkOverflows: this.#overflows,
      repliesOn: this.#netlink?.repliesOn ?? false,
      startedAtSeconds: Math.floor(this.#startedAtSeconds),
    });
  }

  health(): { healthy: boolean; devices: number; brokenRings: string[]; netlink: boolean; stopping: boolean } {
    const brokenRings = this.devices.devices.filter((device) => device.engine.broken).map((device) => device.info.deviceName);
    return { healthy: brokenRings.length === 0 && !this.#stopping, devices: this.devices.devices.length, brokenRings, netlink: this.#netlink !== undefined, stopping: this.#stopping };
  }

  #writeServed(): void {
    const path = join(this.#options.runDir, "served.json");
    const devices = this.devices.devices.map((device) => ({
      name: device.info.deviceName,
      hbaId: device.info.hbaId,
      uio: device.info.uio,
      config: device.configPath,
      backstore: device.backstoreDescription,
      sizeBytes: device.sizeBytes,
      worker: device.worker.index,
      notes: [this.devices.options.claims.difference(device.info.subtype), ...device.warnings].filter((note) => note !== undefined),
    }));
    const notServed = this.devices.notServed;
    try {
      writeFileSync(path, `${JSON.stringify({ pid: process.pid, devices, notServed }, null, 2)}\n`);
    } catch (error) {
      this.#options.log.debug(`${path} not written: ${messageOf(error)}`);
    }
  }

  /** Graceful stop; returns the exit status (1 when a device could not be released cleanly). */
  async stop(reason: string): Promise<number> {
    if (this.#stopping) return 0;
    this.#stopping = true;
    const { log } = this.#options;
    sdNotify(`STOPPING=1\nSTATUS=${reason}: draining`);
    if (this.#timer !== undefined) clearInterval(this.#timer);
    log.info(`${reason}: finishing in-flight commands on ${this.devices.devices.length} device(s)`);
    this.devices.stopping = true;
    const scanWait = Bun.sleep(STOP_SCAN_WAIT_MS).then(() => log.warn(`a scan was still running ${STOP_SCAN_WAIT_MS / 1000} s into the stop; going on without it`));
    await Promise.race([this.#scanning, scanWait]);
    const failures = await this.devices.detachAll("stopped");
    this.pool.stop();
    await this.#netlink?.stop();
    this.#netlink = undefined;
    this.#stopStatus();
    await this.#server?.stop(true);
    this.#options.io.close();
    rmSync(join(this.#options.runDir, "served.json"), { force: true });
    this.#lock?.release();
    log.info("stopped");
    return failures === 0 ? 0 : 1;
  }

  /** Last resort on an exit serve did not plan (fatal error): never leave the kernel waiting. */
  disableRepliesNow(): void {
    this.#netlink?.disableReplies();
  }
}
