import { didYouMean, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import type { HostDiscovery, HostPort, HostVm } from "./model.ts";

const listHint = "see 'vmchan ports list'";

/**
 * Finds `VM:PORT` in a discovery. The VM is matched by guest name, else by pid, else by uuid; the port
 * by name, else by device id (libvirt consoles have no name, only an alias such as "console1").
 * Throws a not-found VmchanError listing the candidates with a did-you-mean, or an ambiguity error
 * naming the pids when several VMs share the name.
 */
export function resolveVmPort(discovery: HostDiscovery, vm: string, port: string): { vm: HostVm; port: HostPort } {
  const theVm = _findVm(discovery, vm);
  const byName = theVm.ports.find((p) => p.name === port) ?? theVm.ports.find((p) => p.id === port);
  if (byName) return { vm: theVm, port: byName };
  const names = theVm.ports.map((p) => p.name ?? p.id).filter((n): n is string => n !== null);
  const close = didYouMean(port, names);
  const where = theVm.name !== null ? `VM "${theVm.name}"` : `the VM with pid ${theVm.pid}`;
  throw new VmchanError(
    names.length
      ? `no port named "${port}" in ${where}: it has ${names.map((n) => `"${n}"`).join(", ")}`
      : `no port named "${port}" in ${where}: it has no virtio-serial ports`,
    { code: ExitCode.notFound, hint: `${close.length ? `did you mean "${close[0]}"? ` : ""}${listHint}` },
  );
}

function _findVm(discovery: HostDiscovery, spec: string): HostVm {
  const { vms } = discovery;
  const named = vms.filter((v) => v.name === spec);
  if (named.length > 1) {
    const pids = named.map((v) => v.pid ?? "?").join(", ");
    throw new VmchanError(`VM name "${spec}" is ambiguous: QEMU processes ${pids} all use it`, {
      code: ExitCode.usage,
      hint: `name the VM by pid instead, e.g. "${named[0]!.pid ?? "PID"}:PORT"`,
    });
  }
  const found =
    named[0] ??
    (/^\d+$/.test(spec) ? vms.find((v) => v.pid === Number(spec)) : undefined) ??
    vms.find((v) => v.uuid !== null && v.uuid === spec.toLowerCase());
  if (found) return found;
  // Notes mean some sources were unreadable, so the VM may exist but be invisible to this user.
  const hidden = discovery.notes.length ? " (some sources could not be read: run as root to see every VM)" : "";
  if (vms.length === 0) {
    throw new VmchanError(`no VM named "${spec}": no running QEMU VM was found${hidden}`, { code: ExitCode.notFound, hint: listHint });
  }
  const labels = vms.map((v) => (v.name !== null ? `"${v.name}"` : `pid ${v.pid}`));
  const close = didYouMean(spec, vms.map((v) => v.name).filter((n): n is string => n !== null));
  throw new VmchanError(`no VM named "${spec}": running VMs are ${labels.join(", ")}${hidden}`, {
    code: ExitCode.notFound,
    hint: `${close.length ? `did you mean "${close[0]}"? ` : ""}${listHint}`,
  });
}
