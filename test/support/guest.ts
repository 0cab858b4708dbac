import { PortsListing } from "../../lib/schema.ts";
import type { Lab } from "../lab/lab.ts";

/** Waits until a guest process holds the port (or its hvc) open, per `vmchan ports list --json`; returns its pid. */
export async function waitHeld(lab: Lab, port: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await lab.run("vmchan ports list --json");
    const holder = PortsListing.parse(JSON.parse(r.stdout)).guest.find((p) => p.name === port)?.holders[0];
    if (holder) return holder.pid;
    if (Date.now() > deadline) throw new Error(`no guest process opened port ${port} within ${timeoutMs / 1000} s`);
    await Bun.sleep(200);
  }
}
