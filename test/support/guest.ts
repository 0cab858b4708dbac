import { expect } from "bun:test";
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

/** A finished command, guest (RunResult) or host (stdout may be bytes). */
type Seen = { code: number; stdout?: string | Uint8Array; stderr?: string };

/**
 * Asserts a guest or host command's exit code; on failure the message carries what was seen: the code, its stdout and
 * stderr (each cut to its last 2000 characters) and the tail of the guest console, so a CI log alone explains it.
 */
export function expectExit(lab: Lab, r: Seen, code: number): void {
  if (r.code === code) return;
  const cut = (s: string | Uint8Array = "") => {
    const text = typeof s === "string" ? s : Buffer.from(s).toString("latin1");
    return text.length > 2000 ? `...${text.slice(-2000)}` : text;
  };
  expect(r.code, `expected exit ${code}, got ${r.code}\nstdout: ${JSON.stringify(cut(r.stdout))}\nstderr: ${JSON.stringify(cut(r.stderr))}\n${lab.diagnostics()}`).toBe(code);
}
