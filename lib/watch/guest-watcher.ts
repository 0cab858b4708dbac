import * as fs from "node:fs";
import { MAX_ATTRIBUTE, readFileBounded } from "../bounded-read.ts";
import { under } from "../context.ts";
import { describeError } from "../host/describe-error.ts";
import { portEntries } from "../guest/ports.ts";
import type { GuestWatchEvent } from "./event.ts";

const SYSFS_PORTS = "/sys/class/virtio-ports";
const DEBUGFS_PORTS = "/sys/kernel/debug/virtio-ports";
const HOST_CONNECTED = Buffer.from("host_connected: ");

/** A guest event before it is stamped with the time. */
export type GuestChange = Omit<GuestWatchEvent, "time">;

/** Options of GuestWatcher. */
export interface GuestWatcherOptions {
  /**
   * How long a new port may stay without its `name` file before it is reported with name null. The name
   * follows the port by 10 to 20 ms (facts (f)); a port the host gave no name never gets one. Default 2000 ms.
   */
  nameGraceMs?: number;
  /** Milliseconds clock. Default Date.now; tests pass a fake. */
  now?: () => number;
}

interface Tracked {
  /** `vportNpM`. */
  port: string;
  /**
   * The sysfs entry's inode, read only while debugfs is unreadable: a port unplugged and plugged again between two
   * polls gets the same vportNpM but a new inode. With debugfs, the held `fd` tells instead.
   */
  ino: number | null;
  /**
   * The port's debugfs file, kept open and re-read from offset 0 each poll (one pread instead of open, read and
   * close). Reads of it fail once its port is gone, even when a new port took the same vportNpM.
   */
  fd: number | null;
  name: string | null;
  seenAt: number;
  /** Whether port-added was reported (or the port was there when watching began). */
  announced: boolean;
  /** debugfs host_connected; null when unknown. */
  host: boolean | null;
}

/**
 * Watches this guest's virtio-serial ports by polling sysfs (ports, names) and debugfs (host_connected).
 * It never opens a port: opening makes QEMU deliver the host's data, closing throws it away (facts (b)), and
 * only one process may hold a port. Each `poll()` returns what changed since the previous one; the first
 * poll only records the state.
 */
export class GuestWatcher {
  readonly #root: string;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #ports = new Map<string, Tracked>();
  #primed = false;
  /** null = readable; otherwise why not. */
  #debugfsProblem: string | null = "not checked yet";
  #debugfsNoted = false;
  readonly #buf = Buffer.alloc(4096);

  constructor(root: string, options: GuestWatcherOptions = {}) {
    this.#root = root;
    this.#graceMs = options.nameGraceMs ?? 2000;
    this.#now = options.now ?? Date.now;
  }

  /** Whether /sys/class/virtio-ports exists (the virtio_console driver is loaded). */
  get isGuest(): boolean {
    return _exists(under(this.#root, SYSFS_PORTS));
  }

  /** How many ports are known now. */
  get portCount(): number {
    return this.#ports.size;
  }

  /** Why host connect/disconnect cannot be watched, or null when debugfs is readable. */
  get debugfsProblem(): string | null {
    return this.#debugfsProblem;
  }

  /** Reads sysfs and debugfs once; returns the changes, and at most once in the watcher's life a note about debugfs. */
  poll(): { changes: GuestChange[]; notes: string[] } {
    const now = this.#now();
    const changes: GuestChange[] = [];
    const notes: string[] = [];
    const entries = portEntries(this.#root);
    if (this.#debugfsProblem !== null) this.#checkDebugfs();
    if (this.#debugfsProblem !== null && entries.length > 0 && !this.#debugfsNoted) {
      this.#debugfsNoted = true;
      notes.push(
        `host connect/disconnect cannot be watched: ${DEBUGFS_PORTS} is not readable (${this.#debugfsProblem}); ports added and removed are still reported` +
          ` (hint: run as root with debugfs mounted: mount -t debugfs none /sys/kernel/debug)`,
      );
    }

    const present = new Set<string>();
    for (const port of entries) {
      present.add(port);
      let t = this.#ports.get(port);
      let host: boolean | null | "gone" = null;
      if (t) {
        host = this.#readHostConnected(t);
        const ino = t.ino === null ? null : this.#ino(port);
        if (t.ino !== null && ino === null) {
          present.delete(port); // removed since readdir: reported below
          continue;
        }
        if (host === "gone" || ino !== t.ino) {
          this.#removed(t, changes);
          t = undefined;
        }
      }
      if (!t) {
        t = { port, ino: null, fd: null, name: null, seenAt: now, announced: !this.#primed, host: null };
        this.#ports.set(port, t);
        host = this.#readHostConnected(t);
      }
      // "gone" for a port just found: removed since readdir, it will be missing from the next readdir.
      if (host === "gone") host = null;
      if (t.fd === null && t.ino === null && this.#debugfsProblem !== null) t.ino = this.#ino(port);
      if (t.name === null) t.name = this.#readName(port);
      if (!t.announced) {
        if (t.name === null && now - t.seenAt < this.#graceMs) continue;
        t.announced = true;
        changes.push(this.#change("port-added", t, "sysfs"));
        if (host === true) changes.push(this.#change("host-connected", t, "debugfs"));
        t.host = host;
        continue;
      }
      if (host !== null && t.host !== null && host !== t.host) {
        changes.push(this.#change(host ? "host-connected" : "host-disconnected", t, "debugfs"));
      }
      // A state learned for the first time (at the start, or once debugfs became readable) is not a change.
      if (host !== null) t.host = host;
    }
    for (const t of [...this.#ports.values()]) if (!present.has(t.port)) this.#removed(t, changes);
    this.#primed = true;
    return { changes, notes };
  }

  /** Closes the debugfs files held open. */
  close(): void {
    for (const t of this.#ports.values()) this.#closeFd(t);
  }

  #closeFd(t: Tracked): void {
    if (t.fd === null) return;
    try {
      fs.closeSync(t.fd);
    } catch {}
    t.fd = null;
  }

  #removed(t: Tracked, changes: GuestChange[]): void {
    this.#closeFd(t);
    this.#ports.delete(t.port);
    // Gone within the name's grace time: it did exist, so both halves are reported.
    if (!t.announced) changes.push(this.#change("port-added", t, "sysfs"));
    changes.push(this.#change("port-removed", t, "sysfs"));
  }

  #change(event: GuestChange["event"], t: Tracked, via: GuestChange["via"]): GuestChange {
    return { side: "guest", event, port: t.name, device: `/dev/${t.port}`, via };
  }

  #checkDebugfs(): void {
    try {
      fs.readdirSync(under(this.#root, DEBUGFS_PORTS));
      this.#debugfsProblem = null;
    } catch (err) {
      this.#debugfsProblem = describeError(err);
    }
  }

  #ino(port: string): number | null {
    try {
      return fs.lstatSync(under(this.#root, `${SYSFS_PORTS}/${port}`)).ino;
    } catch {
      return null;
    }
  }

  #readName(port: string): string | null {
    try {
      const name = readFileBounded(under(this.#root, `${SYSFS_PORTS}/${port}/name`), MAX_ATTRIBUTE).trim();
      return name === "" ? null : name;
    } catch {
      return null;
    }
  }

  /** debugfs host_connected of the port; null when unknown, "gone" when the port behind the held file went away. */
  #readHostConnected(t: Tracked): boolean | null | "gone" {
    if (this.#debugfsProblem !== null) return null;
    if (t.fd === null) {
      try {
        t.fd = fs.openSync(under(this.#root, `${DEBUGFS_PORTS}/${t.port}`), "r");
      } catch {
        return null; // debugfs makes the file a moment after the port
      }
    }
    let n: number;
    try {
      n = fs.readSync(t.fd, this.#buf, 0, this.#buf.length, 0);
    } catch {
      this.#closeFd(t);
      return "gone";
    }
    const at = this.#buf.subarray(0, n).indexOf(HOST_CONNECTED);
    if (at < 0) return null;
    const v = this.#buf[at + HOST_CONNECTED.length];
    return v === 0x31 ? true : v === 0x30 ? false : null;
  }
}

function _exists(path: string): boolean {
  try {
    fs.statSync(path);
    return true;
  } catch {
    return false;
  }
}
