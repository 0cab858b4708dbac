import { didYouMean, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import type { HostDiscovery, HostPort, HostVm } from "./model.ts";
import { ownerLabel } from "./vm-owner.ts";

const listHint = "see 'vmchan ports list'";

/** How the VM part of `VM:PORT` picks a VM: by any of name, pid, uuid, or by one of them explicitly. */
export interface VmSelector {
  by: "any" | "name" | "pid" | "uuid";
  value: string;
}

/**
 * Splits the explicit forms off an address's VM and port parts: `pid:N:PORT`, `uuid:U:PORT` and
 * `name:NAME:PORT` arrive as vm "pid" and port "N:PORT". They take precedence over a VM literally
 * named "pid", "uuid" or "name" (reach that one as `name:pid:PORT`).
 */
export function parseVmSelector(vm: string, port: string): { selector: VmSelector; port: string } {
  const colon = port.indexOf(":");
  if ((vm === "pid" || vm === "uuid" || vm === "name") && colon > 0 && colon < port.length - 1) {
    return { selector: { by: vm, value: port.slice(0, colon) }, port: port.slice(colon + 1) };
  }
  return { selector: { by: "any", value: vm }, port };
}

/** A `--vm` value as a selector: `pid:N`, `uuid:U`, `name:NAME`, or anything else matched against all three. */
export function vmSelectorOf(spec: string): VmSelector {
  const m = /^(pid|uuid|name):(.+)$/.exec(spec);
  return m ? { by: m[1] as VmSelector["by"], value: m[2]! } : { by: "any", value: spec };
}

/** The VMs a selector matches: for "any", those whose name, pid or uuid equals the value. */
export function vmsMatching(vms: readonly HostVm[], sel: VmSelector): HostVm[] {
  const byName = (v: HostVm) => v.name === sel.value;
  const byPid = (v: HostVm) => /^\d+$/.test(sel.value) && v.pid === Number(sel.value);
  const byUuid = (v: HostVm) => v.uuid !== null && v.uuid === sel.value.toLowerCase();
  const test = sel.by === "name" ? byName : sel.by === "pid" ? byPid : sel.by === "uuid" ? byUuid : (v: HostVm) => byName(v) || byPid(v) || byUuid(v);
  return vms.filter(test);
}

/** How to write a selector in an address, for messages. */
function _selectorText(sel: VmSelector): string {
  return sel.by === "any" ? sel.value : `${sel.by}:${sel.value}`;
}

/**
 * Finds `VM:PORT`. The VM part is matched against guest names, pids and uuids at once (see
 * parseVmSelector for the explicit forms); when it matches more than one VM, whichever way, it is
 * ambiguous: a process any user can start under any name must not win over the VM whose pid or uuid
 * was meant. The port is matched by name, else by device id (libvirt consoles have no name, only an
 * alias such as "console1"). Throws a not-found VmchanError listing the candidates with a
 * did-you-mean, or an ambiguity error listing the matching VMs and how to name each one.
 */
export function resolveVmPort(discovery: HostDiscovery, vm: string, port: string): { vm: HostVm; port: HostPort } {
  const parsed = parseVmSelector(vm, port);
  port = parsed.port;
  const theVm = findVm(discovery, parsed.selector);
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

/** One candidate of an ambiguity, with what tells it apart. */
function _candidate(v: HostVm, spec: string): string {
  const why = [v.name === spec ? "name" : null, String(v.pid) === spec ? "pid" : null, v.uuid !== null && v.uuid === spec.toLowerCase() ? "uuid" : null]
    .filter((w) => w !== null)
    .join(", ");
  const name = v.name !== null ? ` "${v.name}"` : "";
  const owner = v.owner ? `, ${ownerLabel(v.owner)}` : "";
  return `pid ${v.pid ?? "?"}${name} (matches its ${why}${owner})`;
}

/** The one VM a selector picks; throws the not-found or ambiguity error resolveVmPort gives. */
export function findVm(discovery: HostDiscovery, sel: VmSelector): HostVm {
  const { vms } = discovery;
  const found = vmsMatching(vms, sel);
  if (found.length > 1) {
    // The VMs matched by pid or uuid first: those are facts the kernel or the VM's creator set, a name anyone can choose.
    const rank = (v: HostVm) => (sel.by === "any" && v.name === sel.value ? 1 : 0);
    const ordered = [...found].sort((a, b) => rank(a) - rank(b));
    const first = ordered[0]!;
    const pick = first.pid !== null ? `"pid:${first.pid}:PORT"` : first.uuid !== null ? `"uuid:${first.uuid}:PORT"` : null;
    const named = found.filter((v) => v.name !== null && v.name === sel.value).length;
    const what = named === found.length ? `VM name "${sel.value}" is ambiguous` : `VM "${_selectorText(sel)}" is ambiguous`;
    throw new VmchanError(`${what}: it matches ${ordered.map((v) => _candidate(v, sel.value)).join("; ")}`, {
      code: ExitCode.usage,
      hint: `pick one with pid:PID:PORT${pick ? `, e.g. ${pick}` : ""}, uuid:UUID:PORT or name:NAME:PORT; see 'vmchan ports list'`,
    });
  }
  if (found[0]) return found[0];
  const spec = _selectorText(sel);
  // Notes mean some sources were unreadable, so the VM may exist but be invisible to this user.
  const hidden = discovery.notes.length ? " (some sources could not be read: run as root to see every VM)" : "";
  if (vms.length === 0) {
    throw new VmchanError(`no VM named "${spec}": no running QEMU VM was found${hidden}`, { code: ExitCode.notFound, hint: listHint });
  }
  const labels = vms.map((v) => (v.name !== null ? `"${v.name}"` : `pid ${v.pid}`));
  const close = didYouMean(sel.value, vms.map((v) => v.name).filter((n): n is string => n !== null));
  throw new VmchanError(`no VM named "${spec}": running VMs are ${labels.join(", ")}${hidden}`, {
    code: ExitCode.notFound,
    hint: `${close.length ? `did you mean "${close[0]}"? ` : ""}${listHint}`,
  });
}
