import * as fs from "node:fs";
import { MAX_ATTRIBUTE, readFileBounded } from "../bounded-read.ts";
import { under } from "../context.ts";
import { findHolders } from "../proc.ts";
import type { GuestPort } from "../schema.ts";

const SYSFS_PORTS = "/sys/class/virtio-ports";
const DEBUGFS_PORTS = "/sys/kernel/debug/virtio-ports";

/** The fields of /sys/kernel/debug/virtio-ports/vportNpM, or null when it cannot be read. */
export type DebugInfo = Record<string, string>;

/** Parses the debugfs "key: value" lines of one port. */
export function parseDebugInfo(text: string): DebugInfo {
  const info: DebugInfo = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) info[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return info;
}

function readText(path: string): string | null {
  try {
    return readFileBounded(path, MAX_ATTRIBUTE);
  } catch {
    return null;
  }
}

function exists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The `vportNpM` entries in sysfs, in (N, M) order. */
export function portEntries(root: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(under(root, SYSFS_PORTS));
  } catch {
    return [];
  }
  const key = (s: string) => (s.match(/\d+/g) ?? []).map(Number);
  return names
    .filter((n) => /^vport\d+p\d+$/.test(n))
    .sort((a, b) => {
      const [a1 = 0, a2 = 0] = key(a);
      const [b1 = 0, b2 = 0] = key(b);
      return a1 - b1 || a2 - b2;
    });
}

/** Reads every guest port under `root` (sysfs names, devices, links, debugfs state, holders). */
export function listGuestPorts(root: string): GuestPort[] {
  const entries = portEntries(root);
  if (entries.length === 0) return [];
  const base = entries.map((port) => {
    const rawName = readText(under(root, `${SYSFS_PORTS}/${port}/name`));
    const name = rawName === null || rawName.trim() === "" ? null : rawName.trim();
    const debugText = readText(under(root, `${DEBUGFS_PORTS}/${port}`));
    const debug = debugText === null ? null : parseDebugInfo(debugText);
    const nr = Number(port.match(/p(\d+)$/)?.[1] ?? -1);
    let kind: GuestPort["kind"] = "unknown";
    let consoleDev: string | null = null;
    if (debug?.is_console !== undefined) {
      kind = debug.is_console === "yes" ? "console" : "serial";
      const vtermno = Number(debug.console_vtermno);
      // hvc numbering follows console_vtermno (1 -> hvc0), not the port number.
      if (kind === "console" && vtermno > 0) consoleDev = `/dev/hvc${vtermno - 1}`;
    } else if (nr === 0) {
      // Port 0 is reserved for virtconsole by QEMU, so it is a console even without debugfs.
      kind = "console";
    }
    // For a console, debugfs says host_connected 1 and guest_connected 1 whatever the host does
    // (measured in the lab): the flags carry no information there, so they are reported unknown.
    const flag = (key: string) =>
      debug?.[key] === undefined || (kind === "console" && key !== "outvq_full") ? null : debug[key] === "1";
    const num = (key: string) => {
      const v = debug?.[key];
      return v === undefined || !/^\d+$/.test(v) ? null : Number(v);
    };
    const link = name === null ? null : `/dev/virtio-ports/${name}`;
    return {
      name,
      port,
      device: `/dev/${port}`,
      link,
      linkPresent: link !== null && exists(under(root, link)),
      kind,
      console: consoleDev,
      hostConnected: flag("host_connected"),
      guestConnected: flag("guest_connected"),
      outvqFull: flag("outvq_full"),
      bytesSent: num("bytes_sent"),
      bytesReceived: num("bytes_received"),
      bytesDiscarded: num("bytes_discarded"),
      holders: [] as GuestPort["holders"],
      holdersComplete: false as boolean,
    } satisfies GuestPort;
  });
  const targets = base.flatMap((p) => (p.console ? [p.device, p.console] : [p.device]));
  const { holders, complete } = findHolders(root, targets);
  for (const p of base) {
    p.holders = [...(holders.get(p.device) ?? []), ...(p.console ? (holders.get(p.console) ?? []) : [])];
    p.holdersComplete = complete;
  }
  return base;
}

/** Why there are no ports, in words a user can act on. */
export function noPortsReason(root: string): { reason: string; hint: string } {
  const virtioDevices = readDirSafe(under(root, "/sys/bus/virtio/devices"));
  const hasSerialDevice = virtioDevices.some(
    (d) => readText(under(root, `/sys/bus/virtio/devices/${d}/device`))?.trim() === "0x0003",
  );
  if (hasSerialDevice) {
    if (!exists(under(root, "/sys/module/virtio_console")))
      return {
        reason: "the virtio_console module is not loaded",
        hint: "run 'modprobe virtio_console' as root",
      };
    return {
      reason: "the virtio-serial device has no ports",
      hint: "add '-device virtserialport,name=NAME,chardev=ID' to the VM, or hot-plug one with QMP device_add",
    };
  }
  if (virtioDevices.length > 0 || isVirtualMachine(root))
    return {
      reason: "this machine has no virtio-serial device",
      hint: "give the VM '-device virtio-serial-pci' and a virtserialport, or a libvirt <channel type='unix'>",
    };
  return {
    reason: "this machine is not a virtual machine guest",
    hint: "run vmchan inside a QEMU/KVM guest, or use 'VM:NAME' addresses on the host",
  };
}

function readDirSafe(path: string): string[] {
  try {
    return fs.readdirSync(path);
  } catch {
    return [];
  }
}

function isVirtualMachine(root: string): boolean {
  const cpuinfo = readText(under(root, "/proc/cpuinfo")) ?? "";
  return /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
}
