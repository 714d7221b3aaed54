// Reads the declarative config: TOML through Bun's parser, then the zod schema. Every problem
// comes back as one line naming the file, the key (devices.disk0.exports[1].iqn) and what is
// wrong; all problems are reported at once so a broken file is fixed in one pass.
import type { FileIoMode } from "../../backstores/file/file-io.ts";
import type { CompatMode } from "../serve/handler-claims.ts";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { z } from "zod";
import { DEFAULT_SUBTYPE } from "../uio/discover.ts";
import { fileSchema, type ParsedFile } from "./schema.ts";
import { toDeviceSpec, type DeviceSpec } from "./spec.ts";

export const DEFAULT_CONFIG_PATH = "/etc/tcmu-appliance.toml";

export class ConfigError extends Error {
  readonly code = "E_CONFIG_INVALID";
  readonly path: string;
  /** One line per problem: "<file>: <key>: <problem>". */
  readonly problems: string[];

  constructor(path: string, problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
    this.path = path;
    this.problems = problems;
  }
}

export interface ServeSettings {
  subtype: string;
  allowRoots: string[];
  /** "host:port", or undefined for the default; "off" disables the HTTP endpoint. */
  metricsListen: string | undefined;
  logLevel: "error" | "warn" | "info" | "debug" | undefined;
  logFormat: "pretty" | "json" | undefined;
  dataPlaneThreads: number | undefined;
  pollUs: number | undefined;
  fileIo: FileIoMode | undefined;
  compat: CompatMode | undefined;
}

export interface ApplianceConfig {
  path: string;
  serve: ServeSettings;
  devices: DeviceSpec[];
}

/** An empty config: what serve runs with when the default file does not exist. */
export function emptyConfig(path: string): ApplianceConfig {
  return { path, serve: { subtype: DEFAULT_SUBTYPE, allowRoots: [], metricsListen: undefined, logLevel: undefined, logFormat: undefined, dataPlaneThreads: undefined, pollUs: undefined, fileIo: undefined, compat: undefined }, devices: [] };
}

export function loadConfigFile(path: string, host = hostname()): ApplianceConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [`${path}: cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
  return parseConfigText(path, text, host);
}

export function parseConfigText(path: string, text: string, host = hostname()): ApplianceConfig {
  let document: unknown;
  try {
    document = Bun.TOML.parse(text);
  } catch (error) {
    const line = tomlErrorLine(text, tomlErrorMessage(error));
    throw new ConfigError(path, [`${path}: ${line === undefined ? "" : `line ${line}: `}not valid TOML: ${tomlErrorMessage(error)}`]);
  }
  const result = fileSchema.safeParse(document);
  if (!result.success) throw new ConfigError(path, result.error.issues.map((issue) => `${path}: ${formatIssue(issue, document)}`));
  return toConfig(path, result.data, host);
}

function toConfig(path: string, parsed: ParsedFile, host: string): ApplianceConfig {
  return {
    path,
    serve: {
      subtype: parsed.serve.subtype ?? DEFAULT_SUBTYPE,
      allowRoots: parsed.serve.allow_roots ?? [],
      metricsListen: parsed.serve.metrics_listen,
      logLevel: parsed.serve.log_level,
      logFormat: parsed.serve.log_format,
      dataPlaneThreads: parsed.serve.data_plane_threads,
      pollUs: parsed.serve.poll_us,
      fileIo: parsed.serve.file_io,
      compat: parsed.serve.compat,
    },
    devices: Object.entries(parsed.devices).map(([name, device]) => toDeviceSpec(name, device, host)),
  };
}

/**
 * "devices.disk0.exports[1].iqn: <message>", naming unknown keys by their full path; a key the
 * document lacks is reported as missing whatever type zod expected there.
 */
export function formatIssue(issue: z.core.$ZodIssue, document?: unknown): string {
  const key = formatKeyPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    const names = issue.keys.map((name) => (key === "" ? name : `${key}.${name}`));
    return `${names.join(", ")}: unknown key${names.length > 1 ? "s" : ""}`;
  }
  if ((issue.code === "invalid_type" || issue.code === "invalid_union") && valueAt(document, issue.path) === undefined) {
    return `${key}: missing (required)`;
  }
  if (issue.code === "invalid_key") return `${key}: ${issue.issues[0]?.message ?? issue.message}`;
  return key === "" ? issue.message : `${key}: ${issue.message}`;
}

function valueAt(document: unknown, path: readonly PropertyKey[]): unknown {
  let value = document;
  for (const part of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

export function formatKeyPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const part of path) {
    if (typeof part === "number") text += `[${part}]`;
    else text += text === "" ? String(part) : `.${String(part)}`;
  }
  return text;
}

function tomlErrorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^TOML Parse error:\s*/, "");
}

/**
 * Bun's TOML errors carry no position (their line/column describe the JS caller), so the line is
 * found as the shortest prefix of the file that fails with the same message.
 */
function tomlErrorLine(text: string, message: string): number | undefined {
  const lines = text.split("\n");
  for (let count = 1; count <= lines.length; count += 1) {
    try {
      Bun.TOML.parse(lines.slice(0, count).join("\n"));
    } catch (error) {
      if (tomlErrorMessage(error) === message) return count;
    }
  }
  return undefined;
}
