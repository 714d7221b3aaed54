// serve's side of the status report: its attached devices seen as StatusDeviceSources, and
// their exports as the ownership state file records them (serve knows them from there only).
import type { DeviceRecord, ExportRecord, StateStore } from "../configfs/state.ts";
import type { AttachedDevice } from "../serve/attached-device.ts";
import type { RecentWarnings } from "./recent-warnings.ts";
import { StatusProvider, type StatusDeviceSource } from "./status-provider.ts";

export interface ServeStatusOptions {
  devices: { readonly devices: readonly AttachedDevice[] };
  state: StateStore;
  serve(): { stopping: boolean; netlink: boolean };
  warnings: RecentWarnings;
  startedAtMs: number;
}

/** serve's status provider, sampling from now on. */
export function startServeStatus(options: ServeStatusOptions): StatusProvider {
  const provider = new StatusProvider({
    devices: () => options.devices.devices.map(attachedStatusDevice),
    exports: () => {
      try {
        return exportsByDevice(options.state.read().devices, options.devices.devices);
      } catch {
        // A state file being rewritten or damaged costs the page its exports column, nothing more.
        return new Map();
      }
    },
    serve: options.serve,
    warnings: options.warnings,
    startedAtMs: options.startedAtMs,
  });
  provider.start();
  return provider;
}

/** A live view: every property reads the device when the report is made. */
export function attachedStatusDevice(device: AttachedDevice): StatusDeviceSource {
  return {
    get name() {
      return device.info.deviceName;
    },
    get uio() {
      return device.info.uio;
    },
    get backstoreKind() {
      return device.backstoreKind;
    },
    get backstoreDescription() {
      return device.backstoreDescription;
    },
    get sizeBytes() {
      return device.sizeBytes;
    },
    get blockSizeBytes() {
      return device.info.attributes.hwBlockSizeBytes;
    },
    get detaching() {
      return device.detaching;
    },
    metrics: device.metrics,
    engine: device.engine,
    unit: device.unit,
  };
}

export function describeExport(record: ExportRecord): string {
  return record.fabric === "loop" ? `loop ${record.wwn}` : `iscsi ${record.iqn} ${record.portal} (${record.access})`;
}

/**
 * Name → exports of the served devices that tcmu-appliance created (the record's HBA must be
 * the device's: a same-named device on another HBA is someone else's).
 */
export function exportsByDevice(records: Readonly<Record<string, DeviceRecord>>, devices: readonly AttachedDevice[]): Map<string, string[]> {
  const exports = new Map<string, string[]>();
  for (const device of devices) {
    const record = records[device.info.deviceName];
    if (record !== undefined && record.hbaId === device.info.hbaId) exports.set(device.info.deviceName, record.exports.map(describeExport));
  }
  return exports;
}
