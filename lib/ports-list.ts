import { type Context, under } from "./context.ts";
import { VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { listGuestPorts, noPortsReason } from "./guest/ports.ts";
import { discoverHosts } from "./host/discover.ts";
import { defaultLibvirtDirs } from "./host/libvirt.ts";
import type { HostDiscovery, HostVm } from "./host/model.ts";
import { vmSelectorOf, vmsMatching } from "./host/resolve-vm-port.ts";
import type { GuestPort, PortsListing } from "./schema.ts";
import { clipText } from "./escape.ts";
import { ChunkedWriter, writeJson, writeTable } from "./table.ts";

export interface PortsListOptions {
  /** Print JSON (schema: PortsListing) instead of tables. Default false. */
  json?: boolean;
  /** Host side: only the VM with this name or pid. */
  vm?: string;
  /** Host side: ask each VM's QMP socket for live state (guest-open, held). Default true. */
  qmp?: boolean;
}

/** `vmchan ports list`: the guest's ports and, on a host, every running VM's ports. */
export async function portsList(ctx: Context, options: PortsListOptions = {}): Promise<number> {
  const guest = options.vm === undefined ? listGuestPorts(ctx.root) : [];
  const matches = (vm: HostVm) => options.vm === undefined || vmsMatching([vm], vmSelectorOf(options.vm)).length > 0;
  const host = await discoverHosts({
    procRoot: under(ctx.root, "/proc"),
    libvirtDirs: defaultLibvirtDirs(ctx.env).map((d) => under(ctx.root, d)),
    useQmp: options.qmp ?? true,
    filter: matches,
    passwdFile: under(ctx.root, "/etc/passwd"),
  });
  for (const note of host.notes) ctx.err(`vmchan: note: ${clipText(note)}\n`);
  if (options.vm !== undefined && host.vms.length === 0)
    throw new VmchanError(`no running VM named "${options.vm}"`, { code: ExitCode.notFound, hint: "see 'vmchan ports list' for every VM" });
  if (guest.length === 0 && host.vms.length === 0) {
    const { reason, hint } = noPortsReason(ctx.root);
    throw new VmchanError(`no virtio-serial ports: ${reason}, and it runs no QEMU VM`, { code: ExitCode.noPorts, hint });
  }
  const listing: PortsListing = { guest, host };
  // Written in chunks as made: a listing of many ports is never one giant string.
  const out = new ChunkedWriter(ctx.out);
  if (options.json) {
    writeJson(listing, out);
    out.add("\n");
    out.flush();
    return ExitCode.ok;
  }
  const both = guest.length > 0 && host.vms.length > 0;
  if (guest.length > 0) {
    if (both) out.add("Guest ports:\n");
    guestTable(guest, out);
  }
  if (host.vms.length > 0) {
    if (both) out.add("\nHost VMs:\n");
    hostTable(host, out);
  }
  out.flush();
  return ExitCode.ok;
}

const unknown = "unknown";

function guestTable(ports: readonly GuestPort[], out: ChunkedWriter): void {
  const rows = ports.map((p) => [
    p.name ?? "(unnamed)",
    p.device,
    p.link === null ? "-" : p.linkPresent ? "present" : "missing",
    p.kind === "console" ? `console ${p.console?.replace("/dev/", "") ?? "hvc?"}` : p.kind,
    p.hostConnected === null ? unknown : p.hostConnected ? "connected" : "disconnected",
    p.guestConnected === null ? unknown : p.guestConnected ? "open" : "closed",
    p.bytesSent === null ? "-" : String(p.bytesSent),
    p.bytesReceived === null ? "-" : String(p.bytesReceived),
    p.holders.length > 0
      ? p.holders.map((h) => `${h.pid} (${h.command})`).join(", ")
      : p.holdersComplete
        ? "-"
        : "?",
  ]);
  writeTable(["NAME", "DEVICE", "LINK", "KIND", "HOST", "GUEST", "SENT", "RECEIVED", "HELD BY"], () => rows, out);
}

function hostTable(host: HostDiscovery, out: ChunkedWriter): void {
  const rows = host.vms.flatMap((vm) =>
    (vm.ports.length ? vm.ports : [null]).map((p) =>
      p === null
        ? [vm.name ?? "-", String(vm.pid ?? "-"), ownerCell(vm), "(no ports)", "", "", "", "", ""]
        : [
            vm.name ?? "-",
            String(vm.pid ?? "-"),
            ownerCell(vm),
            p.name ?? p.id ?? "(unnamed)",
            p.kind,
            p.backend === "tcp" ? `tcp:${p.address}` : (p.path ?? (p.backend === "fd" ? "fd (path unknown)" : p.qemuBackend ?? "-")),
            p.mode === "connect" ? "we connect" : p.mode === "listen" ? "QEMU connects" : "-",
            p.guestOpen === null ? unknown : p.guestOpen ? "open" : "closed",
            p.held === null ? unknown : p.held ? "held" : "free",
          ],
    ),
  );
  writeTable(["VM", "PID", "USER", "PORT", "KIND", "SOCKET", "MODE", "GUEST", "CLIENT"], () => rows, out);
}

/** Who runs the VM: user name, else uid; "-" when unknown. */
function ownerCell(vm: HostVm): string {
  return vm.owner ? (vm.owner.user ?? String(vm.owner.uid)) : "-";
}
