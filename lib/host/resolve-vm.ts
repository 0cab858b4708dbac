import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { discoverHosts, vmLabel, type DiscoverOptions } from "./discover.ts";
import type { HostDiscovery, HostPort, HostVm } from "./model.ts";
import { parseVmSelector, resolveVmPort, vmsMatching } from "./resolve-vm-port.ts";
import { diagLookup, readProcSockets, type ListenerOf } from "./proc-sockets.ts";
import { ownerLabel, ownerSurprises } from "./vm-owner.ts";

/** Options of `hostTargetResolver`. */
export interface HostResolverOptions extends Pick<DiscoverOptions, "procRoot" | "libvirtDirs" | "passwdFile"> {
  /** Where warnings go (one line each, without "vmchan: "). Default: stderr. */
  warn?: (line: string) => void;
  /** The effective uid we run as. Default process.geteuid(). */
  euid?: number;
}

/** Where `VM:NAME` leads: the socket path, and who must have made the socket (SocketChannelOptions of the same names). */
export interface HostTarget {
  path: string;
  /** The VM's user and root; when the VM's owner is unknown, root and ourselves. */
  peerUids: number[];
  /** The VM and its owner in words, for a refusal's hint. */
  peerWho: string;
  /** The VM's QEMU pid (null when its process is unknown): the listener must be its, root's, or bound to one of `peerListeners`. */
  peerPid: number | null;
  /** QEMU's listening sockets, from sock_diag; empty when unknown. */
  peerListeners: ListenerOf[];
  /** Whether QEMU's own fds show a client connected (discovery's `held`); null when they could not be read. */
  held: boolean | null;
}

/**
 * Resolves `VM:NAME` to its socket and the users allowed to have made it. /proc and libvirt's files
 * first, which touches no socket; QMP (for hot-plugged ports, or fd-passed paths) only for that one
 * VM, and only when the first look did not give a path. Refuses a port whose socket discovery found
 * untrusted (exit 12); warns about a VM that another ordinary user could have started.
 */
export function hostTargetResolver(options: HostResolverOptions = {}): (vm: string, port: string) => Promise<HostTarget> {
  const { warn = (line: string) => void process.stderr.write(`vmchan: warning: ${line}\n`), euid = process.geteuid?.() ?? -1, ...discover } = options;
  return async (vm, port) => {
    const one = (d: HostDiscovery) => {
      const matching = vmsMatching(d.vms, parseVmSelector(vm, port).selector);
      return matching.length === 1 ? matching[0] : undefined;
    };
    const quick = await discoverHosts({ ...discover, useQmp: false });
    let found: { vm: HostVm; port: HostPort } | null = null;
    try {
      found = resolveVmPort(quick, vm, port);
    } catch (err) {
      // The VM is there but the port is not: it may have been hot-plugged; ask QMP before failing.
      const target = one(quick);
      if (!target || target.qmp.length === 0) throw err;
    }
    if (!found || found.port.path === null) {
      const pid = found?.vm.pid ?? one(quick)?.pid;
      const live = await discoverHosts({ ...discover, filter: (v) => v.pid === pid });
      found = resolveVmPort(live, vm, port);
    }
    const label = `${vm}:${port}`;
    const path = socketPathOf(found.vm, found.port, label);
    if (found.port.untrusted)
      throw new VmchanError(`refusing "${label}": ${found.port.untrusted}`, {
        code: ExitCode.untrusted,
        hint: `if you trust that socket anyway, connect to it as 'unix:${path}'`,
      });
    return hostTargetOf(found.vm, found.port, { warn, euid, procRoot: discover.procRoot });
  };
}

/**
 * The connection checks for a trusted port with a socket path (see HostTarget), with a warning about
 * a VM that another ordinary user could have started.
 */
export function hostTargetOf(
  vm: HostVm,
  port: HostPort,
  options: { warn: (line: string) => void; euid: number; procRoot?: string },
): HostTarget {
  const owner = vm.owner ?? null;
  if (owner !== null && ownerSurprises(owner, options.euid))
    options.warn(`${vmLabel(vm)} runs as ${ownerLabel(owner)}, not as you, root or a QEMU service account: any process of that user could pose as it`);
  const procRoot = options.procRoot ?? "/proc";
  let peerListeners: ListenerOf[] = [];
  if (vm.pid !== null && procRoot === "/proc") {
    try {
      peerListeners = readProcSockets(procRoot, vm.pid, { lookup: diagLookup }).listeners;
    } catch {
      // QEMU's fds unreadable: the pid and root remain as proof
    }
  }
  const common = { path: port.path!, held: port.held, peerPid: vm.pid, peerListeners };
  if (owner === null) {
    const uids = [...new Set([0, options.euid].filter((u) => u >= 0))];
    return { ...common, peerUids: uids, peerWho: `the owner of ${vmLabel(vm)} is unknown, so only root's or your own socket is accepted` };
  }
  return { ...common, peerUids: [...new Set([owner.uid, 0])], peerWho: `${vmLabel(vm)} runs as ${ownerLabel(owner)}` };
}


function socketPathOf(vm: HostVm, port: HostPort, label: string): string {
  if (port.backend === "unix" && port.path !== null) {
    if (port.mode === "listen")
      throw new VmchanError(`"${label}" is a client-mode chardev: QEMU connects to ${port.path}`, {
        code: ExitCode.usage,
        hint: `serve it with 'vmchan listen unix:${port.path}'`,
      });
    return port.path;
  }
  const what =
    port.backend === "tcp"
      ? `a TCP chardev (${port.address}): use tcp:${port.address}`
      : port.backend === "pty"
        ? `a pty chardev (${port.path ?? "path unknown"})`
        : port.backend === "fd"
          ? "a socket QEMU inherited as a file descriptor, whose path could not be found (run as root, or as QEMU's user)"
          : `a "${port.qemuBackend ?? "unknown"}" chardev, not a unix socket`;
  throw new VmchanError(`cannot connect to "${label}": it is ${what}`, {
    code: ExitCode.notFound,
    hint: `see 'vmchan ports list --vm ${vm.pid !== null ? `pid:${vm.pid}` : vm.name}'`,
  });
}
