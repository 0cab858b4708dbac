import * as fs from "node:fs";
import { parseAddress } from "../address.ts";
import { UsageError, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { discoverHosts, type DiscoverOptions } from "../host/discover.ts";
import type { HostDiscovery, HostPort, HostVm } from "../host/model.ts";
import { hostTargetOf, hostTargetResolver, type HostTarget } from "../host/resolve-vm.ts";
import { findVm, vmSelectorOf } from "../host/resolve-vm-port.ts";

/**
 * Where `vmchan console` connects. `label` names it in messages (`myvm:con0`, `unix:/run/x.sock`).
 * A VM's port carries the checks its connection must pass (`checks`: who made the socket, held).
 */
export type ConsoleTarget =
  | { kind: "unix"; label: string; path: string; checks?: Omit<HostTarget, "path"> }
  | { kind: "tcp"; label: string; host: string; port: number };

export interface TargetOptions {
  /** Host discovery. Default discoverHosts (tests pass a fake). */
  discover?: (options: DiscoverOptions) => Promise<HostDiscovery>;
  /** `VM:NAME` to its socket and connection checks. Default hostTargetResolver(). */
  resolveVmPort?: (vm: string, port: string) => Promise<HostTarget>;
  /** Where warnings go (one line each, without "vmchan: "). Default: stderr. */
  warn?: (line: string) => void;
  /** The effective uid we run as. Default process.geteuid(). */
  euid?: number;
  /** Where /proc is, for QEMU's listening sockets. Default "/proc". */
  procRoot?: string;
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
  const resolve = options.resolveVmPort ?? hostTargetResolver({ warn: options.warn, euid: options.euid, procRoot: options.procRoot });
  switch (addr.kind) {
    case "unix":
      return { kind: "unix", label: text, path: addr.path };
    case "tcp":
      return { kind: "tcp", label: text, host: addr.host, port: addr.port };
    case "vm-port":
      // "pid:N", "uuid:U", "name:NAME" alone pick a VM, as a bare VM word does.
      if (/^(pid|uuid|name)$/.test(addr.vm) && !addr.port.includes(":")) return firstConsole(text, options, resolve);
      return _vmTarget(text, await resolve(addr.vm, addr.port));
    case "port":
      // A bare word is a VM here (console runs on the host); "port:NAME" is a guest address.
      if (/^port:/i.test(text))
        throw new UsageError(`console "${text}": a guest port address; console runs on the host`, `give ${kinds}`);
      return firstConsole(addr.spec, options, resolve);
    default:
      throw new UsageError(`console takes ${kinds}, not a ${addr.kind} address ("${text}")`, "see 'vmchan console --help'");
  }
}

function _vmTarget(label: string, { path, ...checks }: HostTarget): ConsoleTarget {
  return { kind: "unix", label, path, checks };
}

async function firstConsole(spec: string, options: TargetOptions, resolve: (vm: string, port: string) => Promise<HostTarget>): Promise<ConsoleTarget> {
  const discover = options.discover ?? discoverHosts;
  // /proc and libvirt's files first; QMP only for this VM, when they show no usable console (hot-plugged).
  let vm = findVm(await discover({ useQmp: false }), vmSelectorOf(spec));
  let port = pickConsole(vm);
  if ((!port || !connectable(port)) && vm.qmp.length > 0) {
    const pid = vm.pid;
    vm = findVm(await discover({ filter: (v) => v.pid === pid }), vmSelectorOf(spec));
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
    const warn = options.warn ?? ((line: string) => void process.stderr.write(`vmchan: warning: ${line}\n`));
    return _vmTarget(`${spec}:${name ?? "console"}`, hostTargetOf(vm, port, { warn, euid: options.euid ?? process.geteuid?.() ?? -1, procRoot: options.procRoot }));
  }
  if (name === null)
    throw new VmchanError(`cannot connect to the console of ${where}: it has no name or id, and no unix socket QEMU listens on`, {
      code: ExitCode.notFound,
      hint: `see 'vmchan ports list --vm ${spec}'`,
    });
  // Not a unix socket QEMU listens on: the resolver says what it is and what to use instead.
  const explicit = /^(pid|uuid|name):(.+)$/.exec(spec);
  return _vmTarget(`${spec}:${name}`, explicit ? await resolve(explicit[1]!, `${explicit[2]}:${name}`) : await resolve(spec, name));
}

function connectable(port: HostPort): boolean {
  return port.backend === "unix" && port.mode === "connect" && port.path !== null;
}

function pickConsole(vm: HostVm): HostPort | undefined {
  const consoles = vm.ports.filter((p) => p.kind === "console");
  return consoles.find(connectable) ?? consoles[0];
}
