// The last warn/error lines of serve's log, for the status page: a log wrapped by wrap() still
// writes everything where it did, and also keeps its warnings and errors in a bounded list.
import type { ServeLog } from "../serve/errors.ts";
import type { StatusWarning } from "./status-schema.ts";

export const RECENT_WARNINGS_MAX = 50;

export class RecentWarnings {
  readonly #entries: StatusWarning[] = [];
  readonly #limit: number;

  constructor(limit = RECENT_WARNINGS_MAX) {
    this.#limit = limit;
  }

  /** Oldest first. */
  get entries(): readonly StatusWarning[] {
    return this.#entries;
  }

  record(level: StatusWarning["level"], source: string, message: string): void {
    this.#entries.push({ time: new Date().toISOString(), level, source, message });
    if (this.#entries.length > this.#limit) this.#entries.splice(0, this.#entries.length - this.#limit);
  }

  /** `log`, with its warn and error lines also recorded here under `source`. */
  wrap(log: ServeLog, source: string): ServeLog {
    return {
      debug: (message) => log.debug(message),
      info: (message) => log.info(message),
      warn: (message) => {
        this.record("warn", source, message);
        log.warn(message);
      },
      error: (message) => {
        this.record("error", source, message);
        log.error(message);
      },
    };
  }
}
