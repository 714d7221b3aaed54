// What the config file tests ask of a text: the problems the loader names (one line each).
import { ConfigError, parseConfigText } from "../../src/appliance-config/load.ts";

/** The path the texts are said to come from, as errors name it. */
export const CONFIG_FILE = "/etc/tcmu-appliance.toml";

/** The problems parseConfigText names for `text` (loaded as on host "box1"); throws if it accepts it. */
export function problems(text: string): string[] {
  try {
    parseConfigText(CONFIG_FILE, text, "box1");
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("the config was accepted");
}
