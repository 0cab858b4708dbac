import * as fs from "node:fs";
import { readFilePrefix } from "../bounded-read.ts";
import { join } from "node:path";
import { isQemuCommand, splitCmdline } from "../host/cmdline.ts";

/** Options of DiscoveryProbe. */
export interface DiscoveryProbeOptions {
  /**
   * How long a new process that is not QEMU yet is looked at again: a launcher forks, then execs QEMU in the
   * child, so the child's first cmdline may still be the launcher's. Default 5000 ms.
   */
  youngMs?: number;
  /** Milliseconds clock. Default Date.now. */
  now?: () => number;
}

/**
 * Tells cheaply whether host discovery could answer differently than last time: a process that is QEMU
 * appeared, a QEMU process went away, or a libvirt status file changed. A discovery reads every process's
 * cmdline; this reads the /proc directory and only the cmdline of processes it has not seen before, which
 * matters when it runs every second (inside a guest under TCG, a discovery costs several milliseconds).
 */
export class DiscoveryProbe {
  readonly #procRoot: string;
  readonly #libvirtDirs: readonly string[];
  readonly #youngMs: number;
  readonly #now: () => number;
  readonly #pids = new Map<number, { qemu: boolean; seenAt: number }>();
  #libvirt: string | null = null;
  #primed = false;

  constructor(procRoot: string, libvirtDirs: readonly string[], options: DiscoveryProbeOptions = {}) {
    this.#procRoot = procRoot;
    this.#libvirtDirs = libvirtDirs;
    this.#youngMs = options.youngMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /** Whether anything changed since the previous call; the first call answers true. */
  changed(): boolean {
    const now = this.#now();
    let changed = !this.#primed;
    this.#primed = true;
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(this.#procRoot);
    } catch {
      // No /proc: discovery says so in a note; nothing here can change.
    }
    const present = new Set<number>();
    for (const entry of entries) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      present.add(pid);
      const known = this.#pids.get(pid);
      if (!known) {
        const qemu = this.#isQemu(entry);
        this.#pids.set(pid, { qemu, seenAt: now });
        if (qemu) changed = true;
      } else if (!known.qemu && now - known.seenAt < this.#youngMs && this.#isQemu(entry)) {
        known.qemu = true;
        changed = true;
      }
    }
    for (const [pid, p] of this.#pids) {
      if (present.has(pid)) continue;
      this.#pids.delete(pid);
      if (p.qemu) changed = true;
    }
    const libvirt = this.#libvirtSignature();
    if (libvirt !== this.#libvirt) changed = true;
    this.#libvirt = libvirt;
    return changed;
  }

  #isQemu(pid: string): boolean {
    try {
      // argv[0] is all that is needed: a bounded beginning, however long the command line.
      const argv = splitCmdline(readFilePrefix(`${this.#procRoot}/${pid}/cmdline`, 4096));
      if (argv.length === 0) return false; // a kernel thread
      if (isQemuCommand(argv[0]!)) return true;
      // Launchers may rewrite argv[0]; the executable tells (when readable).
      return isQemuCommand(fs.readlinkSync(`${this.#procRoot}/${pid}/exe`).replace(/ \(deleted\)$/, ""));
    } catch {
      return false;
    }
  }

  /** Names, sizes and modification times of libvirt's status files: libvirt rewrites one when a guest opens or closes a channel. */
  #libvirtSignature(): string {
    const parts: string[] = [];
    for (const dir of this.#libvirtDirs) {
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        parts.push(`${dir}:-`);
        continue;
      }
      for (const name of names.filter((n) => n.endsWith(".xml")).sort()) {
        try {
          const st = fs.statSync(join(dir, name));
          parts.push(`${dir}/${name}:${st.size}:${st.mtimeMs}`);
        } catch {
          parts.push(`${dir}/${name}:gone`);
        }
      }
    }
    return parts.join("\n");
  }
}
