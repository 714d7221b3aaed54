// Reading and writing configfs. Every failure names the file and what was written, because the
// kernel's own answer (EINVAL, EBUSY) says nothing about which of a dozen writes it refused.
//
// Everything here is async, on the thread pool, because serve runs this code too and many
// configfs operations block on the very process that serves the devices: `enable` and a
// device's rmdir wait for serve's netlink reply; linking a tcm_loop LUN probes the new SCSI disk
// and unlinking it sends SYNCHRONIZE CACHE, both of which serve must answer; and any lookup
// under a device whose rmdir is pending waits for that rmdir. On the event loop any of these
// would deadlock serve (until the kernel's command timeout, or forever).
import { access, mkdir, readdir, readFile, readlink, rmdir, symlink, unlink, writeFile } from "node:fs/promises";

/** A configfs operation that failed; `code` is the errno name when the kernel gave one. */
export class ConfigfsError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = "ConfigfsError";
    this.code = code;
  }
}

function describe(error: unknown): { text: string; code: string | undefined } {
  const code = (error as NodeJS.ErrnoException)?.code;
  return { text: code ?? (error instanceof Error ? error.message : String(error)), code };
}

/**
 * The file operations configfs provisioning uses. Tests pass a subclass working on a temp dir
 * that behaves like configfs where a plain directory would not (rmdir of an item that still
 * holds attribute files, attribute files appearing on mkdir).
 */
export class ConfigfsIo {
  /**
   * Writes `value` with no trailing newline, as rtslib does: iSCSI's auth attributes (userid,
   * password…) keep every byte written, so "alice\n" would be a different CHAP user.
   */
  async writeAttribute(path: string, value: string | number): Promise<void> {
    try {
      await writeFile(path, String(value));
    } catch (error) {
      const { text, code } = describe(error);
      throw new ConfigfsError(`writing "${value}" to ${path} failed: ${text}`, code);
    }
  }

  /**
   * The attribute's text, trimmed; undefined when the file is not there (the device gone
   * meanwhile); any other failure throws, naming the file — for values a wrong default would
   * silently change (a device's size).
   */
  async readAttributeIfPresent(path: string): Promise<string | undefined> {
    try {
      return (await readFile(path, "utf8")).trim();
    } catch (error) {
      const { text, code } = describe(error);
      if (code === "ENOENT") return undefined;
      throw new ConfigfsError(`reading ${path} failed: ${text}`, code);
    }
  }

  /** The attribute's text, trimmed; undefined when it cannot be read (absent, or gone meanwhile). */
  async readAttribute(path: string): Promise<string | undefined> {
    try {
      return (await readFile(path, "utf8")).trim();
    } catch {
      return undefined;
    }
  }

  /** mkdir that treats "already there" as done. */
  async makeDirectory(path: string): Promise<void> {
    try {
      await mkdir(path);
    } catch (error) {
      const { text, code } = describe(error);
      if (code === "EEXIST") return;
      throw new ConfigfsError(`mkdir ${path} failed: ${text}`, code);
    }
  }

  async makeLink(target: string, path: string): Promise<void> {
    try {
      await symlink(target, path);
    } catch (error) {
      const { text, code } = describe(error);
      throw new ConfigfsError(`ln -s ${target} ${path} failed: ${text}`, code);
    }
  }

  /** rmdir that treats "already gone" as done. */
  async removeDirectory(path: string): Promise<void> {
    try {
      await rmdir(path);
    } catch (error) {
      const { text, code } = describe(error);
      if (code === "ENOENT") return;
      throw new ConfigfsError(`rmdir ${path} failed: ${text}`, code);
    }
  }

  async removeLink(path: string): Promise<void> {
    try {
      await unlink(path);
    } catch (error) {
      const { text, code } = describe(error);
      if (code === "ENOENT") return;
      throw new ConfigfsError(`rm ${path} failed: ${text}`, code);
    }
  }

  /** Entries of a directory (names only); empty when it does not exist. */
  async listEntries(path: string): Promise<string[]> {
    try {
      return await readdir(path);
    } catch {
      return [];
    }
  }

  async readLink(path: string): Promise<string | undefined> {
    try {
      return await readlink(path);
    } catch {
      return undefined;
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await access(path);
      return true;
    } catch {
      return false;
    }
  }

  /** Releases whatever the implementation holds (threads); nothing here. */
  close(): void {}
}

export const CONFIGFS_IO = new ConfigfsIo();
