import type { Context } from "./context.ts";
import { VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { listGuestPorts, noPortsReason } from "./guest/ports.ts";
import type { GuestPort, PortsListing } from "./schema.ts";
import { formatTable } from "./table.ts";

export interface PortsListOptions {
  /** Print JSON (schema: PortsListing) instead of a table. Default false. */
  json?: boolean;
}

/** `vmchan ports list`: every virtio-serial port this machine can see. */
export function portsList(ctx: Context, options: PortsListOptions = {}): number {
  const guest = listGuestPorts(ctx.root);
  if (guest.length === 0) {
    const { reason, hint } = noPortsReason(ctx.root);
    throw new VmchanError(`no virtio-serial ports: ${reason}`, { code: ExitCode.noPorts, hint });
  }
  const listing: PortsListing = { guest };
  if (options.json) {
    ctx.out(JSON.stringify(listing, null, 2) + "\n");
    return ExitCode.ok;
  }
  ctx.out(guestTable(guest));
  return ExitCode.ok;
}

const unknown = "unknown";

function guestTable(ports: readonly GuestPort[]): string {
  const rows = ports.map((p) => [
    p.name ?? "(unnamed)",
    p.device,
    p.link === null ? "-" : p.linkPresent ? "present" : "missing",
    p.kind === "console" ? `console ${p.console ?? "hvc?"}` : p.kind,
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
  return formatTable(["NAME", "DEVICE", "LINK", "KIND", "HOST", "GUEST", "SENT", "RECEIVED", "HELD BY"], rows);
}
