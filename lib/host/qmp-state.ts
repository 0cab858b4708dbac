import { hostPort, type HostPort, type HostVm } from "./model.ts";

/** The part of QmpClient that discovery uses, so tests can pass a fake. */
export interface QmpLike {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>;
  close(): void;
}

/** Opens a QMP session (greeting and qmp_capabilities done) or rejects within about `timeoutMs`. */
export type QmpConnect = (path: string, opts: { timeoutMs: number }) => Promise<QmpLike>;

/** One `query-chardev` entry. */
export interface QmpChardev {
  filename: string;
  frontendOpen: boolean;
}

/** A virtserialport/virtconsole device as QOM shows it. */
export interface QmpPortDevice {
  /** `/machine/peripheral/ID` or `/machine/peripheral-anon/device[N]`. */
  qomPath: string;
  id: string | null;
  kind: HostPort["kind"];
  name: string | null;
  chardev: string | null;
  nr: number | null;
  bus: string | null;
}

/** What one QMP session says about a VM. */
export interface QmpView {
  running: boolean | null;
  chardevs: Map<string, QmpChardev>;
  /** Every port device, or null when QOM could not be listed (then the command-line ports stand). */
  devices: QmpPortDevice[] | null;
}

const CONTAINERS = ["/machine/peripheral", "/machine/peripheral-anon"];

/**
 * Asks QEMU for its run state, its chardevs and its port devices. QOM is listed rather than trusted from
 * the command line because ports can be hot-plugged and unplugged, and `query-chardev` alone does not
 * say which device uses a chardev.
 */
export async function readQmpView(qmp: QmpLike, timeoutMs: number): Promise<QmpView> {
  const opts = { timeoutMs };
  const status = await qmp.execute<{ running?: unknown }>("query-status", undefined, opts);
  const list = await qmp.execute<{ label?: unknown; filename?: unknown; "frontend-open"?: unknown }[]>("query-chardev", undefined, opts);
  const chardevs = new Map<string, QmpChardev>();
  for (const c of Array.isArray(list) ? list : []) {
    if (typeof c.label === "string" && typeof c.filename === "string") {
      chardevs.set(c.label, { filename: c.filename, frontendOpen: c["frontend-open"] === true });
    }
  }
  let devices: QmpPortDevice[] | null = [];
  try {
    for (const container of CONTAINERS) {
      const children = await qmp.execute<{ name?: unknown; type?: unknown }[]>("qom-list", { path: container }, opts);
      for (const ch of Array.isArray(children) ? children : []) {
        const kind = ch.type === "child<virtserialport>" ? "serial" : ch.type === "child<virtconsole>" ? "console" : null;
        if (kind === null || typeof ch.name !== "string") continue;
        const qomPath = `${container}/${ch.name}`;
        const get = (property: string) => qmp.execute<unknown>("qom-get", { path: qomPath, property }, opts);
        const [name, chardev, nr, bus] = [await get("name"), await get("chardev"), await get("nr"), await get("parent_bus")];
        devices.push({
          qomPath,
          id: container === "/machine/peripheral" ? ch.name : null,
          kind,
          name: typeof name === "string" && name !== "" ? name : null,
          chardev: typeof chardev === "string" && chardev !== "" ? chardev : null,
          nr: typeof nr === "number" ? nr : null,
          // parent_bus is a link path ending in the bus name, e.g. ".../vs0/virtio-backend/vs0.0".
          bus: typeof bus === "string" && bus !== "" ? bus.slice(bus.lastIndexOf("/") + 1) : null,
        });
      }
    }
  } catch {
    // An old QEMU without some property: keep the state we have and the command-line ports.
    devices = null;
  }
  return { running: typeof status?.running === "boolean" ? status.running : null, chardevs, devices };
}

/** Where a `query-chardev` filename says the chardev leads and whether a peer is connected. */
export function parseChardevFilename(filename: string): {
  connected: boolean;
  backend: HostPort["backend"];
  path: string | null;
  address: string | null;
  mode: HostPort["mode"];
} {
  const disconnected = filename.startsWith("disconnected:");
  const rest = disconnected ? filename.slice("disconnected:".length) : filename;
  // QEMU prints the path unescaped, so only the exact ",server=on" suffix can be split off safely.
  const server = rest.endsWith(",server=on");
  const body = server ? rest.slice(0, -",server=on".length) : rest;
  const mode = server ? ("connect" as const) : ("listen" as const);
  if (body.startsWith("unix:")) {
    const path = body.slice(5);
    // In client mode QEMU shows no path while connected.
    return { connected: !disconnected, backend: "unix", path: path === "" ? null : path, address: null, mode };
  }
  if (body.startsWith("tcp:")) {
    return { connected: !disconnected, backend: "tcp", path: null, address: body.slice(4) || null, mode };
  }
  if (body.startsWith("pty:")) return { connected: false, backend: "pty", path: body.slice(4) || null, address: null, mode: null };
  return { connected: false, backend: "other", path: null, address: null, mode: null };
}

/**
 * Folds a QMP view into a VM: QOM's device list replaces the command line's (hot-plug, unplug), keeping
 * what only the command line or libvirt knew (paths of fd-passed sockets, reconnect); query-chardev gives
 * guestOpen and held.
 */
export function applyQmpView(vm: HostVm, view: QmpView): HostVm {
  let ports = vm.ports;
  if (view.devices !== null) {
    // Indexed, first one wins as find() would: thousands of devices must not cost devices × ports.
    const byId = new Map<string, HostPort>();
    const byChardev = new Map<string, HostPort>();
    for (const p of vm.ports) {
      if (p.id !== null && !byId.has(p.id)) byId.set(p.id, p);
      if (p.chardev !== null && !byChardev.has(p.chardev)) byChardev.set(p.chardev, p);
    }
    ports = view.devices.map((d) => {
      const known =
        (d.id !== null ? byId.get(d.id) : undefined) ??
        (d.chardev !== null ? byChardev.get(d.chardev) : undefined) ??
        hostPort({ kind: d.kind });
      return {
        ...known,
        kind: d.kind,
        id: d.id,
        name: d.name ?? known.name,
        chardev: d.chardev,
        nr: d.nr ?? known.nr,
        bus: d.bus ?? known.bus,
      };
    });
  }
  ports = ports.map((p) => {
    const c = p.chardev === null ? undefined : view.chardevs.get(p.chardev);
    if (!c) return p;
    const f = parseChardevFilename(c.filename);
    const out = { ...p };
    if (out.backend === null || out.backend === "fd" || (out.path === null && out.address === null)) {
      if (f.path !== null || f.address !== null || out.backend === null) {
        out.backend = f.backend;
        out.path = f.path ?? out.path;
        out.address = f.address ?? out.address;
      }
      out.mode ??= f.mode;
      out.qemuBackend ??= f.backend === "unix" || f.backend === "tcp" ? "socket" : f.backend === "pty" ? "pty" : null;
    }
    if (f.backend === "unix" || f.backend === "tcp") out.held = f.connected;
    // A virtconsole is reported open with no guest running (measured, -S): the flag says nothing there.
    out.guestOpen = p.kind === "serial" ? c.frontendOpen : null;
    return out;
  });
  return { ...vm, sources: [...vm.sources, "qmp"], running: view.running ?? vm.running, ports };
}
