/** The QEMU command line of a lab: pure functions, so the layout can be read (and tested) without booting. */
import { join } from "node:path";

/** A port under test, as given to Lab.boot. */
export interface LabPort {
  /** The port's name (`name=` of the device; the guest's /sys/class/virtio-ports/vportNpM/name). */
  name: string;
  /** "serial" (virtserialport, default) or "console" (virtconsole, a tty /dev/hvcN in the guest). */
  kind?: "serial" | "console";
  /** QEMU device id; default "port-" + the name with characters QEMU refuses replaced. Always set, so QMP events name the port. */
  id?: string;
  /** "server" (default): QEMU listens on a unix socket. "client": QEMU connects to a socket we listen on, retrying every second. */
  mode?: "server" | "client";
  /** The unix socket path; default a file in the lab's temp dir. */
  path?: string;
  /** The port number on the bus (the M of vport0pM); default: QEMU picks the lowest free one (0 is for a console). */
  nr?: number;
}

/** A LabPort with every default filled in. */
export interface ResolvedPort {
  name: string;
  kind: "serial" | "console";
  id: string;
  chardev: string;
  mode: "server" | "client";
  path: string;
  nr: number | undefined;
}

/** Name of the harness's control port (on its own bus, so it is vport1p1 and never among the ports under test). */
export const controlPortName = "org.vmchan.lab.control";
/** QEMU id of the bus of the ports under test: they are /dev/vport0pN in the guest. */
export const testBusId = "vs0";

// QEMU ids: a letter, then letters, digits, '-', '.', '_'.
const idPattern = /^[A-Za-z][A-Za-z0-9._-]*$/;

/** The default QEMU device id for a port name. */
export function defaultPortId(name: string): string {
  return `port-${name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
}

/** Fills in defaults and checks names and ids are unique and valid; socket paths go under `dir`. */
export function resolvePorts(ports: readonly LabPort[], dir: string): ResolvedPort[] {
  const names = new Set<string>([controlPortName]);
  const ids = new Set<string>(["lab-control"]);
  return ports.map((p, i) => {
    if (!p.name || /[\s,]/.test(p.name)) throw new Error(`lab port name ${JSON.stringify(p.name)} is empty or has a space or comma`);
    if (names.has(p.name)) throw new Error(`lab port name "${p.name}" is used twice`);
    const id = p.id ?? defaultPortId(p.name);
    if (!idPattern.test(id)) throw new Error(`lab port id "${id}" is not a valid QEMU id`);
    if (ids.has(id)) throw new Error(`lab port id "${id}" is used twice`);
    names.add(p.name);
    ids.add(id);
    const path = p.path ?? join(dir, `p${i}.sock`);
    // sun_path holds 108 bytes including the final NUL.
    if (Buffer.byteLength(path) > 107) throw new Error(`lab socket path is too long for a unix socket: ${path}`);
    if (path.includes(",")) throw new Error(`lab socket path has a comma, which QEMU options cannot hold: ${path}`);
    return { name: p.name, kind: p.kind ?? "serial", id, chardev: `ch-${id}`, mode: p.mode ?? "server", path, nr: p.nr };
  });
}

/** What qemuArgs needs besides the ports. */
export interface QemuArgsInput {
  name: string;
  memoryMiB: number;
  kernel: string;
  initrd: string;
  consoleLog: string;
  qmpSocket: string;
  /** A second QMP socket, free for a client under test (QMP serves one client at a time and the lab holds the first). */
  extraQmpSocket?: string;
  controlSocket: string;
  links: boolean;
  ports: readonly ResolvedPort[];
}

function chardev(p: { chardev: string; path: string; mode: "server" | "client" }): string {
  // QEMU 7.2 knows reconnect=SECONDS only (reconnect-ms came in 9.2). Without it, a client-mode chardev with no
  // listener stops QEMU from starting.
  const how = p.mode === "server" ? "server=on,wait=off" : "reconnect=1";
  return `socket,id=${p.chardev},path=${p.path},${how}`;
}

/** The full argv of qemu-system-x86_64 for a lab. */
export function qemuArgs(o: QemuArgsInput): string[] {
  const named = o.ports.length + 1;
  const append = ["console=ttyS0", "quiet", "panic=-1", `lab.ctl=${controlPortName}`, `lab.ports=${named}`, ...(o.links ? ["lab.links=1"] : [])];
  const args = [
    "qemu-system-x86_64",
    // /dev/kvm exists on these machines but hangs: always TCG.
    "-accel", "tcg",
    "-cpu", "max",
    "-m", String(o.memoryMiB),
    "-name", o.name,
    "-nographic",
    // No default NIC, VGA, floppy, CD-ROM: less to emulate, and no ROMs to load.
    "-nodefaults",
    "-no-reboot",
    "-monitor", "none",
    "-serial", `file:${o.consoleLog}`,
    "-kernel", o.kernel,
    "-initrd", o.initrd,
    "-append", append.join(" "),
    "-qmp", `unix:${o.qmpSocket},server=on,wait=off`,
    ...(o.extraQmpSocket ? ["-qmp", `unix:${o.extraQmpSocket},server=on,wait=off`] : []),
    // The bus under test comes first, so the guest numbers it 0 (vport0pN).
    "-device", `virtio-serial-pci,id=${testBusId}`,
  ];
  for (const p of o.ports) {
    const device = p.kind === "console" ? "virtconsole" : "virtserialport";
    const nr = p.nr === undefined ? "" : `,nr=${p.nr}`;
    args.push("-chardev", chardev(p), "-device", `${device},bus=${testBusId}.0,chardev=${p.chardev},name=${p.name},id=${p.id}${nr}`);
  }
  args.push(
    "-device", "virtio-serial-pci,id=vsctl",
    "-chardev", chardev({ chardev: "ch-lab-control", path: o.controlSocket, mode: "server" }),
    "-device", `virtserialport,bus=vsctl.0,chardev=ch-lab-control,name=${controlPortName},id=lab-control,nr=1`,
  );
  return args;
}
