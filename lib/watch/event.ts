import * as z from "zod/mini";
import { clipText, safeJson } from "../escape.ts";

/** What `ports watch` reports from inside a guest: sysfs for ports coming and going, debugfs for the host's connection. */
export const GuestWatchEvent = z.object({
  /** When vmchan noticed it, ISO 8601 (UTC). Polling makes this up to one interval late. */
  time: z.iso.datetime(),
  side: z.literal("guest"),
  event: z.enum(["port-added", "port-removed", "host-connected", "host-disconnected"]),
  /** The port's name; null for a port the host gave no name (or whose name did not appear within the grace time). */
  port: z.nullable(z.string()),
  /** `/dev/vportNpM`. */
  device: z.string(),
  /** "sysfs": /sys/class/virtio-ports; "debugfs": host_connected in /sys/kernel/debug/virtio-ports. */
  via: z.enum(["sysfs", "debugfs"]),
});
export type GuestWatchEvent = z.infer<typeof GuestWatchEvent>;

/** What `ports watch` reports on a host: VMs starting and stopping, their ports, and the guest opening or closing a port. */
export const HostWatchEvent = z.object({
  time: z.iso.datetime(),
  side: z.literal("host"),
  event: z.enum(["vm-started", "vm-stopped", "port-added", "port-removed", "guest-opened", "guest-closed"]),
  /** The VM's name (`-name`, libvirt's), null when it has none. */
  vm: z.nullable(z.string()),
  /** QEMU's pid, null when only libvirt's files named the VM. */
  pid: z.nullable(z.number()),
  /** The port's name; null for vm-started/vm-stopped and for a port without a name. */
  port: z.nullable(z.string()),
  /** The port's QEMU device id; null for VM events and id-less ports. */
  id: z.nullable(z.string()),
  /** The unix socket behind the port when known (what `cat unix:PATH` connects to), else null. */
  path: z.nullable(z.string()),
  /**
   * Where it was learned: "qmp-event" (VSERPORT_CHANGE, DEVICE_DELETED on a held QMP connection), "qmp-poll"
   * (query-chardev/qom-list on that connection: hot-plug, and ports without an id, which get no events),
   * "libvirt" (libvirt's live XML), "proc" (QEMU processes and command lines in /proc).
   */
  via: z.enum(["qmp-event", "qmp-poll", "libvirt", "proc"]),
  /**
   * Present and true on a VSERPORT_CHANGE that repeats the state already reported: QEMU sends at most one
   * per port per second and keeps only the latest, so the opposite transition in between was coalesced away.
   */
  coalesced: z.optional(z.boolean()),
});
export type HostWatchEvent = z.infer<typeof HostWatchEvent>;

/** One line of `ports watch --json`. */
export const WatchEvent = z.discriminatedUnion("side", [GuestWatchEvent, HostWatchEvent]);
export type WatchEvent = z.infer<typeof WatchEvent>;

/** The same event without its time: what the watchers produce, stamped when emitted. */
export type UntimedEvent = Omit<GuestWatchEvent, "time"> | Omit<HostWatchEvent, "time">;

/** One JSON line, fields in schema order. */
export function formatJsonLine(ev: WatchEvent): string {
  return safeJson(ev) + "\n";
}

/**
 * One human line: local time of day, event, where (guest port name, or VM or VM:PORT as in addresses),
 * then details. Names come from the other side of the VM boundary, so control characters are escaped.
 */
export function formatHumanLine(ev: WatchEvent): string {
  const t = new Date(ev.time);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const clock = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
  let where: string;
  const details: string[] = [];
  if (ev.side === "guest") {
    where = `guest ${ev.port ?? "(unnamed)"}`;
    details.push(ev.device);
  } else {
    const vm = ev.vm ?? `pid ${ev.pid ?? "?"}`;
    const isVmEvent = ev.event === "vm-started" || ev.event === "vm-stopped";
    where = isVmEvent ? vm : `${vm}:${ev.port ?? ev.id ?? "(unnamed)"}`;
    if (ev.pid !== null && ev.vm !== null) details.push(`pid ${ev.pid}`);
    if (!isVmEvent && ev.id !== null) details.push(`id ${ev.id}`);
    if (ev.event === "port-added" && ev.path !== null) details.push(`socket ${ev.path}`);
    if (ev.coalesced) details.push("coalesced: QEMU dropped the opposite change within 1 s");
  }
  details.push(`via ${ev.via}`);
  return `${clock}  ${ev.event.padEnd(17)}  ${clipText(where, 200).padEnd(24)}  ${clipText(details.join(", "), 1000)}\n`;
}
