import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan cat PORT`: read a port to stdout. */
export function catCommand(): Command {
  const cmd = new Command("cat")
    .description("copy a port's data to stdout until the host leaves")
    .argument("<port>", "guest: port name, vportNpM, hvcN or /dev path; host: VM:NAME or unix:PATH")
    .option("-f, --follow", "keep reading across host disconnects and reconnects, like tail -f")
    .option("--vm <vm>", "host: the VM (name, pid or uuid; pid:N, uuid:U or name:NAME to be explicit) whose port PORT is, same as VM:PORT")
    .option("--no-wait", "exit at once (code 6) if no host is connected")
    .option("-t, --timeout <seconds>", "give up (code 7) if no host connects within this time")
    .option("-c, --bytes <n>", "stop after N bytes (suffixes k, M, G)")
    .option("--raw", "write control characters to a terminal as they are (default: shown as ^X)")
    .addHelpText(
      "after",
      "\nA read of 0 bytes from a port means 'no host connected', not end of data: cat waits for the\n" +
        "host without spinning, and ends (exit 0) when a host that was connected disconnects.\n\n" +
        "Examples:\n  vmchan cat org.example.cmd.0 | sh\n  vmchan cat --follow org.example.log.0 >> host.log\n",
    )
    .action(async (port, opts) => {
      await run(async (ctx) => {
        const { parseByteCount, parseSeconds } = await import("../lib/args.ts");
        const { cat } = await import("../lib/cat.ts");
        return cat(ctx, opts.vm === undefined ? port : `${opts.vm}:${port}`, {
          follow: opts.follow ?? false,
          wait: opts.wait,
          timeoutMs: opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, "--timeout"),
          bytes: opts.bytes === undefined ? undefined : parseByteCount(opts.bytes, "--bytes"),
          raw: opts.raw,
        });
      });
    });
  return cmd as unknown as Command;
}
