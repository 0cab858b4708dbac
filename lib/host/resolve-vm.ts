import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { discoverHosts, type DiscoverOptions } from "./discover.ts";
import type { HostPort, HostVm } from "./model.ts";
import { resolveVmPort } from "./resolve-vm-port.ts";

/**
 * Resolves `VM:NAME` to the socket path to connect to. /proc and libvirt's files first, which
 * touches no socket; QMP (for hot-plugged ports, or fd-passed paths) only for that one VM, and
 * only when the first look did not give a path.
 */
export function hostResolver(options: Pick<DiscoverOptions, "procRoot" | "libvirtDirs"> = {}): (vm: string, port: string) => Promise<string> {
  return async (vm, port) => {
    const quick = await discoverHosts({ ...options, useQmp: false });
    let found: { vm: HostVm; port: HostPort } | null = null;
    try {
      found = resolveVmPort(quick, vm, port);
    } catch (err) {
      // The VM is there but the port is not: it may have been hot-plugged; ask QMP before failing.
      const target = quick.vms.find((v) => v.name === vm || String(v.pid) === vm);
      if (!target || target.qmp.length === 0) throw err;
    }
    if (!found || found.port.path === null) {
      const pid = found?.vm.pid ?? quick.vms.find((v) => v.name === vm || String(v.pid) === vm)?.pid;
      const live = await discoverHosts({ ...options, filter: (v) => v.pid === pid });
      found = resolveVmPort(live, vm, port);
    }
    return socketPathOf(found.vm, found.port, `${vm}:${port}`);
  };
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
    hint: `see 'vmchan ports list --vm ${vm.name ?? vm.pid}'`,
  });
}
