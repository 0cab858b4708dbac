import * as fs from "node:fs";
import { parseAddress } from "../address.ts";
import { UsageError, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { discoverHosts, type DiscoverOptions } from "../host/discover.ts";
import type { HostDiscovery, HostPort, HostVm } from "../host/model.ts";
import { hostResolver } from "../host/resolve-vm.ts";
import { findVm as findVmBySelector, vmSelectorOf } from "../host/resolve-vm-port.ts";

/** Where `vmchan console` connects. `label` names it in messages (`myvm:con0`, `unix:/run/x.sock`). */
export type ConsoleTarget = { kind: "unix"; label: string; path: string } | { kind: "tcp"; label: string; host: string; port: number };

export interface TargetOptions {
  /** Host discovery. Default discoverHosts (tests pass a fake). */
  discover?: (options: DiscoverOptions) => Promise<HostDiscovery>;
  /** `VM:NAME` to a socket path. Default hostResolver(). */
  resolveVmPort?: (vm: string, port: string) => Promise<string>;
}

const kinds = "VM, VM:NAME, unix:PATH or tcp:HOST:PORT";

/**
 * Resolves a console target: `VM` (its first console port, preferring one with a unix socket QEMU
 * listens on), `VM:NAME`, `unix:PATH`, `tcp:HOST:PORT`, or the path of a socket file.
 */
export async function resolveConsoleTarget(text: string, options: TargetOptions = {}): Promise<ConsoleTarget> {
  if (text.startsWith("/")) {
    let isSocket = false;
    try {
      isSocket = fs.statSync(text).isSocket();
    } catch {
      // reported below
    }
    if (isSocket) return { kind: "unix", label: `unix:${text}`, path: text };
    throw new UsageError(`console "${text}": not a socket on this host (a /dev path is a guest device)`, `give ${kinds}; in the guest, serve the port with 'vmchan getty'`);
  }
  const addr = parseAddress(text);
  const resolve = options.resolveVmPort ?? hostResolver();
  switch (addr.kind) {
    case "unix":
      return { kind: "unix", label: text, path: addr.path };
    case "tcp":
      return { kind: "tcp", label: text, host: addr.host, port: addr.port };
    case "vm-port":
      // "pid:N", "uuid:U", "name:NAME" alone pick a VM, as a bare VM word does.
      if (/^(pid|uuid|name)$/.test(addr.vm) && !addr.port.includes(":")) return firstConsole(text, options.discover ?? discoverHosts, resolve);
      return { kind: "unix", label: text, path: await resolve(addr.vm, addr.port) };
    case "port":
      // A bare word is a VM here (console runs on the host); "port:NAME" is a guest address.
      if (/^port:/i.test(text))
        throw new UsageError(`console "${text}": a guest port address; console runs on the host`, `give ${kinds}`);
      return firstConsole(addr.spec, options.discover ?? discoverHosts, resolve);
    default:
      throw new UsageError(`console takes ${kinds}, not a ${addr.kind} address ("${text}")`, "see 'vmchan console --help'");
  }
}

async function firstConsole(
  spec: string,
  discover: (options: DiscoverOptions) => Promise<HostDiscovery>,
  resolve: (vm: string, port: string) => Promise<string>,
): Promise<ConsoleTarget> {
  // /proc and libvirt's files first; QMP only for this VM, when they show no usable console (hot-plugged).
  let vm = findVm(await discover({ useQmp: false }), spec);
  let port = pickConsole(vm);
  if ((!port || !connectable(port)) && vm.qmp.length > 0) {
    const pid = vm.pid;
    vm = findVm(await discover({ filter: (v) => v.pid === pid }), spec);
    port = pickConsole(vm);
  }
  const where = vm.name !== null ? `VM "${vm.name}"` : `the VM with pid ${vm.pid}`;
  if (!port) {
    const names = vm.ports.map((p) => p.name ?? p.id).filter((n): n is string => n !== null);
    throw new VmchanError(`${where} has no console port`, {
      code: ExitCode.notFound,
      hint: names.length
        ? `name a serial port instead, e.g. 'vmchan console ${spec}:${names[0]}' (with 'vmchan getty ${names[0]}' in the guest)`
        : "give the VM a '-device virtconsole,chardev=ID' with a unix socket chardev",
    });
  }
  const name = port.name ?? port.id;
  if (connectable(port)) {
    if (port.untrusted)
      throw new VmchanError(`refusing the console of ${where}: ${port.untrusted}`, {
        code: ExitCode.untrusted,
        hint: `if you trust that socket anyway, connect to it as 'unix:${port.path}'`,
      });
    return { kind: "unix", label: `${spec}:${name ?? "console"}`, path: port.path! };
  }
  if (name === null)
    throw new VmchanError(`cannot connect to the console of ${where}: it has no name or id, and no unix socket QEMU listens on`, {
      code: ExitCode.notFound,
      hint: `see 'vmchan ports list --vm ${spec}'`,
    });
  // Not a unix socket QEMU listens on: the resolver says what it is and what to use instead.
  const explicit = /^(pid|uuid|name):(.+)$/.exec(spec);
  const path = explicit ? await resolve(explicit[1]!, `${explicit[2]}:${name}`) : await resolve(spec, name);
  return { kind: "unix", label: `${spec}:${name}`, path };
}

function connectable(port: HostPort): boolean {
  return port.backend === "unix" && port.mode === "connect" && port.path !== null;
}

function pickConsole(vm: HostVm): HostPort | undefined {
  const consoles = vm.ports.filter((p) => p.kind === "console");
  return consoles.find(connectable) ?? consoles[0];
}

/** The VM `spec` picks (name, pid or uuid, or pid:/uuid:/name:), as resolveVmPort finds it; its errors (not found, ambiguous) otherwise. */
function findVm(discovery: HostDiscovery, spec: string): HostVm {
  return findVmBySelector(discovery, vmSelectorOf(spec));
}
