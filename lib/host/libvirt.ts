import * as fs from "node:fs";
import { join } from "node:path";
import { readFileBounded, TooLargeError } from "../bounded-read.ts";
import { describeError } from "./describe-error.ts";
import { hostPort, type HostPort, type HostVm } from "./model.ts";
import { child, childrenNamed, parseXml, type XmlElement } from "./xml.ts";

/** What a libvirt domain XML tells about a running VM. */
export interface LibvirtDomain {
  /** The VM: sources ["libvirt"], pid from `<domstatus pid=...>` (null in plain `virsh dumpxml` output). */
  vm: HostVm;
  /** libvirt's own QMP monitor socket (`<monitor path=...>`): libvirt stays connected to it, so it is not usable by us. */
  monitor: string | null;
}

/**
 * Reads a libvirt domain XML: a live `virsh dumpxml` (`<domain>`) or the status file libvirt keeps in
 * /run/libvirt/qemu/NAME.xml (`<domstatus pid=...>` wrapping the `<domain>`). Throws XmlError on bad XML.
 */
export function parseLibvirtXml(text: string): LibvirtDomain {
  const root = parseXml(text);
  let domain: XmlElement | undefined = root;
  let pid: number | null = null;
  let monitor: string | null = null;
  if (root.name === "domstatus") {
    const p = Number(root.attrs.pid);
    pid = Number.isInteger(p) && p > 0 ? p : null;
    const mon = child(root, "monitor");
    monitor = mon?.attrs.type === "unix" || mon?.attrs.type === undefined ? (mon?.attrs.path ?? null) : null;
    domain = child(root, "domain");
  }
  if (!domain || domain.name !== "domain") throw new Error(`not a libvirt domain: root element <${root.name}>`);
  const name = child(domain, "name")?.text.trim() || null;
  const uuid = child(domain, "uuid")?.text.trim().toLowerCase() || null;
  const devices = child(domain, "devices");
  const controllers = new Map<string, string>();
  for (const c of devices ? childrenNamed(devices, "controller") : []) {
    const alias = child(c, "alias")?.attrs.name;
    if (c.attrs.type === "virtio-serial" && c.attrs.index !== undefined && alias) controllers.set(c.attrs.index, alias);
  }
  const ports: HostPort[] = [];
  for (const el of devices?.children ?? []) {
    if (el.name !== "channel" && el.name !== "console") continue;
    const target = child(el, "target");
    if (target?.attrs.type !== "virtio") continue; // guestfwd, serial, xen...: not virtio-serial
    ports.push(_port(el, target, controllers));
  }
  return {
    vm: { name, pid, uuid, sources: ["libvirt"], qmp: [], startedPaused: false, running: null, ports },
    monitor,
  };
}

/** One `<channel>` or `<console>` with a virtio target as a HostPort. */
function _port(el: XmlElement, target: XmlElement, controllers: Map<string, string>): HostPort {
  const kind = el.name === "console" ? "console" : "serial";
  const alias = child(el, "alias")?.attrs.name ?? null;
  const source = child(el, "source");
  const type = el.attrs.type ?? "";
  const address = child(el, "address");
  const nr = address?.attrs.type === "virtio-serial" ? Number(address.attrs.port) : NaN;
  const ctl = address?.attrs.type === "virtio-serial" ? controllers.get(address.attrs.controller ?? "0") : undefined;
  const state = target.attrs.state;
  const port = hostPort({
    kind,
    name: target.attrs.name ?? null,
    id: alias,
    // libvirt names the chardev of device ALIAS "charALIAS" (charchannel0, charconsole1).
    chardev: alias === null ? null : `char${alias}`,
    bus: ctl === undefined ? null : `${ctl}.${address?.attrs.bus ?? "0"}`,
    nr: Number.isInteger(nr) ? nr : null,
    guestOpen: kind === "console" || state === undefined ? null : state === "connected",
  });
  switch (type) {
    case "unix": {
      const reconnect = source && child(source, "reconnect");
      const seconds = Number(reconnect?.attrs.timeout);
      const listen = source?.attrs.mode === "connect";
      return {
        ...port,
        backend: "unix",
        qemuBackend: "socket",
        path: source?.attrs.path ?? null,
        // mode='bind': QEMU (or libvirt for it) binds the socket and we connect; mode='connect': QEMU connects to us.
        mode: listen ? "listen" : "connect",
        reconnectMs: listen && reconnect?.attrs.enabled === "yes" && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null,
      };
    }
    case "tcp":
      return {
        ...port,
        backend: "tcp",
        qemuBackend: "socket",
        address: `${source?.attrs.host ?? ""}:${source?.attrs.service ?? ""}`,
        mode: source?.attrs.mode === "connect" ? "listen" : "connect",
      };
    case "pty":
      // The live XML carries the allocated /dev/pts/N (also as the console's tty=).
      return { ...port, backend: "pty", qemuBackend: "pty", path: source?.attrs.path ?? el.attrs.tty ?? null };
    default:
      return { ...port, backend: "other", qemuBackend: type || null };
  }
}

/** The default places of libvirt's live domain XML: the system daemon's, and the session daemon's under $XDG_RUNTIME_DIR. */
export function defaultLibvirtDirs(env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  const dirs = ["/run/libvirt/qemu"];
  if (env.XDG_RUNTIME_DIR) dirs.push(join(env.XDG_RUNTIME_DIR, "libvirt/qemu/run"));
  return dirs;
}

/**
 * Most of one domain XML read. libvirt's live status XML of a busy domain is tens of KiB; 4 MiB is far beyond
 * any real one, and keeps a hostile file (or a device named *.xml) from costing unbounded memory and time.
 */
export const MAX_DOMAIN_XML = 4 * 1024 * 1024;

/** Most XML parsed from all files of one look together: a hundred real domains are a few MiB. */
export const MAX_LIBVIRT_TOTAL = 6 * 1024 * 1024;

/**
 * Reads every live domain XML (`*.xml`) in `dirs`. A missing directory means no such libvirt and is
 * skipped quietly; an unreadable directory or file, or one that does not parse, gives a note.
 */
export function readLibvirtDomains(dirs: readonly string[]): { domains: LibvirtDomain[]; notes: string[] } {
  const domains: LibvirtDomain[] = [];
  const notes: string[] = [];
  let total = 0;
  const over: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") notes.push(`cannot read ${dir}: ${describeError(err)}`);
      continue;
    }
    for (const file of names.filter((n) => n.endsWith(".xml")).sort()) {
      const path = join(dir, file);
      let text: string;
      try {
        text = readFileBounded(path, MAX_DOMAIN_XML);
      } catch (err) {
        if (err instanceof TooLargeError) {
          notes.push(`skipped ${path}: larger than ${MAX_DOMAIN_XML / 1024 / 1024} MiB (libvirt's live XML of a domain is far smaller)`);
          continue;
        }
        // The domain may have stopped between readdir and read: that is not worth a note.
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") notes.push(`cannot read ${path}: ${describeError(err)}`);
        continue;
      }
      if (total + text.length > MAX_LIBVIRT_TOTAL) {
        over.push(path);
        continue;
      }
      total += text.length;
      try {
        domains.push(parseLibvirtXml(text));
      } catch (err) {
        notes.push(`cannot parse ${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
  if (over.length > 0) {
    notes.push(
      `skipped ${over.length} libvirt domain file${over.length === 1 ? "" : "s"} (${over.slice(0, 5).join(", ")}${over.length > 5 ? ", ..." : ""}): ` +
        `over ${MAX_LIBVIRT_TOTAL / 1024 / 1024} MiB of domain XML together, the most read in one look`,
    );
  }
  return { domains, notes };
}
