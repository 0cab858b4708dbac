import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan ports ...`: list and watch the virtio-serial ports this machine can see. */
export function portsCommand(): Command {
  const ports = new Command("ports").description("list and watch virtio-serial ports: this guest's, and every running VM's on a host");
  ports
    .command("list")
    .alias("ls")
    .description("list the ports of this guest and of every running VM, with state and holders")
    .option("--json", "print JSON (schema in README) instead of a table")
    .option("--vm <name>", "host: only the VMs with this name, pid or uuid (pid:N, uuid:U or name:NAME for one of them)")
    .option("--no-qmp", "host: do not ask VMs' QMP sockets for live state")
    .option("--root <dir>", "read /sys, /dev and /proc under DIR (a mounted image, a fixture)", "/")
    .action(async (opts) => {
      await run(async (ctx) => (await import("../lib/ports-list.ts")).portsList(ctx, { json: opts.json, vm: opts.vm, qmp: opts.qmp }), opts.root);
    });
  ports
    .command("watch")
    .description("report ports added and removed, host connects (guest) and guest opens (host) as they happen")
    .option("--json", "one JSON object per line (schema in README) instead of one human line per event")
    .option("--vm <name>", "host: only the VMs with this name, pid or uuid, or pid:N, uuid:U, name:NAME (it may start later); the guest side is not watched")
    .option("--root <dir>", "read /sys and /proc under DIR (a fixture)", "/")
    .addHelpText(
      "after",
      "\nRuns until Ctrl-C or SIGTERM, then exits 0; each line is written as it happens. It never opens a port.\n" +
        "Guest: sysfs and debugfs are read every 0.5 s. Host: /proc every 1 s, and one QMP connection\n" +
        "held per VM for VSERPORT_CHANGE events (QEMU sends at most one per port per second).\n\n" +
        "Examples:\n  vmchan ports watch\n  vmchan ports watch --json --vm web01 | while read -r ev; do ...; done\n",
    )
    .action(async (opts) => {
      await run(async (ctx) => (await import("../lib/watch/watch.ts")).portsWatch(ctx, { json: opts.json, vm: opts.vm, outFd: 1 }), opts.root);
    });
  return ports as unknown as Command;
}
