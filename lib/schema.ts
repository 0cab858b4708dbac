import * as z from "zod/mini";
import { HostDiscovery } from "./host/model.ts";

/** A process that has a port (or a host socket) open. */
export const Holder = z.object({
  pid: z.number(),
  command: z.string(),
});

/** One guest-side virtio-serial port, as `ports list --json` prints it under "guest". */
export const GuestPort = z.object({
  /** The name given by the host (`name=` of virtserialport), null while sysfs has not published it yet. */
  name: z.nullable(z.string()),
  /** The sysfs entry, `vportNpM`. */
  port: z.string(),
  /** `/dev/vportNpM`. */
  device: z.string(),
  /** `/dev/virtio-ports/NAME`, null when the port has no name. */
  link: z.nullable(z.string()),
  /** Whether that link exists (udev makes it; a bare initramfs does not). */
  linkPresent: z.boolean(),
  /** "console" for virtconsole ports, "serial" for virtserialport, "unknown" when it cannot be read. */
  kind: z.enum(["serial", "console", "unknown"]),
  /** `/dev/hvcN` of a console port, when known. */
  console: z.nullable(z.string()),
  /** From debugfs; null when debugfs is not readable (never guessed). */
  hostConnected: z.nullable(z.boolean()),
  guestConnected: z.nullable(z.boolean()),
  outvqFull: z.nullable(z.boolean()),
  bytesSent: z.nullable(z.number()),
  bytesReceived: z.nullable(z.number()),
  bytesDiscarded: z.nullable(z.number()),
  /** Processes holding the device open, from /proc. */
  holders: z.array(Holder),
  /** False when some processes' fds could not be read, so `holders` may be incomplete. */
  holdersComplete: z.boolean(),
});
export type GuestPort = z.infer<typeof GuestPort>;

/** The whole `ports list --json` document: this guest's ports, and the VMs this host runs. */
export const PortsListing = z.object({
  guest: z.array(GuestPort),
  host: HostDiscovery,
});
export type PortsListing = z.infer<typeof PortsListing>;
