import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan ports ...`: list (and later watch) the virtio-serial ports this machine can see. */
export function portsCommand(): Command {
  const ports = new Command("ports").description("list virtio-serial ports: this guest's, and every running VM's on a host");
  ports
    .command("list")
    .alias("ls")
    .description("list the ports of this guest and of every running VM, with state and holders")
    .option("--json", "print JSON (schema in README) instead of a table")
    .option("--vm <name>", "host: only the VM with this name or pid")
    .option("--no-qmp", "host: do not ask VMs' QMP sockets for live state")
    .option("--root <dir>", "read /sys, /dev and /proc under DIR (a mounted image, a fixture)", "/")
    .action(async (opts) => {
      await run(async (ctx) => (await import("../lib/ports-list.ts")).portsList(ctx, { json: opts.json, vm: opts.vm, qmp: opts.qmp }), opts.root);
    });
  return ports as unknown as Command;
}
