// Logging through consola, one tag per subsystem. Nothing logs per command at info level:
// the data plane keeps counters instead.
import { createConsola, type ConsolaInstance, type LogObject } from "consola";

export type LogFormat = "pretty" | "json";

let root: ConsolaInstance = createConsola({ level: 3 });

/** Configures the process-wide logger; called once by the CLI before anything logs. */
export function configureLogging(options: { level?: number; format?: LogFormat }): void {
  const reporters =
    options.format === "json"
      ? [
          {
            log: (entry: LogObject) => {
              const record = {
                time: entry.date.toISOString(),
                level: entry.type,
                tag: entry.tag || undefined,
                message: entry.args.map((part) => (typeof part === "string" ? part : String(part))).join(" "),
              };
              process.stderr.write(`${JSON.stringify(record)}\n`);
            },
          },
        ]
      : undefined;
  root = createConsola({
    level: options.level ?? 3,
    throttle: 0,
    ...(reporters === undefined ? {} : { reporters }),
  });
}

export function logger(tag: string): ConsolaInstance {
  return root.withTag(tag);
}
