import * as z from "zod/mini";

/**
 * One virtio-serial port of a VM as seen from the host: a `virtserialport` or `virtconsole` device
 * and the chardev behind it. Printed under "host" by `ports list --json`.
 * Every state field is null when no source could tell: values are never guessed.
 */
export const HostPort = z.object({
  /** The port name (`name=` of the device, what the guest sees in /sys/class/virtio-ports/*\/name); null when the device has none (libvirt consoles, for one). */
  name: z.nullable(z.string()),
  /** "serial" for virtserialport, "console" for virtconsole. */
  kind: z.enum(["serial", "console"]),
  /** QEMU device id (`id=`, libvirt's alias such as "channel0"); null for an id-less device. */
  id: z.nullable(z.string()),
  /** Id of the chardev the device uses (`chardev=`); null when the device has no chardev. */
  chardev: z.nullable(z.string()),
  /** Virtio-serial bus (`bus=`, e.g. "vs0.0"), when given. */
  bus: z.nullable(z.string()),
  /** Port number on the bus (`nr=`): the M of the guest's vportNpM; null when QEMU picked it and QMP was not asked. */
  nr: z.nullable(z.number()),
  /**
   * How the host end is reached: "unix" socket (see `path`), "tcp" (see `address`), "fd" (a socket QEMU
   * inherited as a file descriptor whose path could not be found), "pty" (see `path`), "other" (spicevmc,
   * file, null...: not something vmchan can talk to); null when the chardev is unknown.
   */
  backend: z.nullable(z.enum(["unix", "tcp", "fd", "pty", "other"])),
  /** The chardev backend word as QEMU knows it ("socket", "pty", "file", "spicevmc"...), null when unknown. */
  qemuBackend: z.nullable(z.string()),
  /** Unix socket path (abstract sockets as "@name"), or the /dev/pts/N of a pty; null when not known. */
  path: z.nullable(z.string()),
  /** "HOST:PORT" of a tcp chardev, null otherwise. */
  address: z.nullable(z.string()),
  /**
   * Who connects: "connect" = QEMU listens (server=on) and a host client connects to it;
   * "listen" = QEMU connects to a host listener (client mode, retrying every `reconnectMs`); null for non-sockets.
   */
  mode: z.nullable(z.enum(["connect", "listen"])),
  /** Client mode: how often QEMU retries to connect (`reconnect=` seconds or `reconnect-ms=`); null when it does not retry or in server mode. */
  reconnectMs: z.nullable(z.number()),
  /**
   * Whether the guest has the port open (QMP `frontend-open`, libvirt `state=`). Always null for a console:
   * QEMU reports a virtconsole open even when no guest is running, so the flag says nothing there.
   */
  guestOpen: z.nullable(z.boolean()),
  /**
   * Whether the socket is taken: in "connect" mode another client is connected (QMP `filename` without
   * `disconnected:`, or QEMU holding an accepted connection in /proc); in "listen" mode QEMU is connected to
   * some listener. QEMU's belief: a client that half-closed still counts until the guest opens the port.
   */
  held: z.nullable(z.boolean()),
  /**
   * Why the socket at `path` cannot be trusted to be this VM's: it is not the file QEMU's listening socket
   * is bound to, or it belongs to a user other than the VM's and root. null when nothing is wrong or
   * nothing could be checked (then the field is left out). `VM:NAME` refuses such a port (exit 12);
   * `unix:PATH` still connects.
   */
  untrusted: z.optional(z.nullable(z.string())),
});
export type HostPort = z.infer<typeof HostPort>;

/** Who runs a VM: the effective uid of its QEMU process and that user's name. */
export const VmOwner = z.object({
  uid: z.number(),
  /** From the passwd file; null when the uid has no entry there. */
  user: z.nullable(z.string()),
});
export type VmOwner = z.infer<typeof VmOwner>;

/** A running QEMU VM and its virtio-serial ports. */
export const HostVm = z.object({
  /** Guest name (`-name`, libvirt `<name>`); null when QEMU was started without one. */
  name: z.nullable(z.string()),
  /** QEMU process id; null when only libvirt's files were readable and they gave none. */
  pid: z.nullable(z.number()),
  /** `-uuid` or libvirt `<uuid>`, lower case. */
  uuid: z.nullable(z.string()),
  /**
   * The user QEMU runs as (/proc/PID/status); null without a process to ask. Any user can start a QEMU
   * and call it anything: the owner is what tells a real VM from an impostor. Discovery always sets it.
   */
  owner: z.optional(z.nullable(VmOwner)),
  /** Where the facts came from, in the order they were merged. */
  sources: z.array(z.enum(["cmdline", "libvirt", "qmp"])),
  /**
   * Server-mode unix QMP sockets, in command-line order (a VM may have several; libvirt's own monitor is
   * left out because libvirt keeps it connected and QMP serves one client at a time).
   */
  qmp: z.array(z.string()),
  /** QEMU was started with -S: the CPUs stay stopped until `cont`, so the guest cannot open ports until then. */
  startedPaused: z.boolean(),
  /** Whether the CPUs are running now (QMP `query-status`); null when QMP was not queried. */
  running: z.nullable(z.boolean()),
  ports: z.array(HostPort),
});
export type HostVm = z.infer<typeof HostVm>;

/** Everything host discovery found, with a note for each source it could not read. */
export const HostDiscovery = z.object({
  vms: z.array(HostVm),
  /** One line per unreadable or unusable source, e.g. `cannot read /proc/1234/cmdline: permission denied`. */
  notes: z.array(z.string()),
});
export type HostDiscovery = z.infer<typeof HostDiscovery>;

/** A port with every field unknown except those given; keeps builders from forgetting a field. */
export function hostPort(fields: Pick<HostPort, "kind"> & Partial<HostPort>): HostPort {
  return {
    name: null,
    id: null,
    chardev: null,
    bus: null,
    nr: null,
    backend: null,
    qemuBackend: null,
    path: null,
    address: null,
    mode: null,
    reconnectMs: null,
    guestOpen: null,
    held: null,
    ...fields,
  };
}
