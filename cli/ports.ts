import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan ports ...`: list (and later watch) the virtio-serial ports this machine can see. */
export function portsCommand(): Command {
  const ports = new Command("ports").description("list the virtio-serial ports of this guest");
  ports
    .command("list")
    .alias("ls")
    .description("list the virtio-serial ports of this guest, with state and holders")
    .option("--json", "print JSON (schema in README) instead of a table")
    .option("--root <dir>", "read /sys, /dev and /proc under DIR (a mounted image, a fixture)", "/")
    .action(async (opts) => {
      await run(async (ctx) => (await import("../lib/ports-list.ts")).portsList(ctx, { json: opts.json }), opts.root);
    });
  return ports as unknown as Command;
}
