import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan send PORT [FILE...]`: write stdin, files or a string to a port. */
export function sendCommand(): Command {
  const cmd = new Command("send")
    .description("write stdin, files or a string to a port")
    .argument("<port>", "guest: port name, vportNpM, hvcN or /dev path; host: VM:NAME or unix:PATH")
    .argument("[files...]", "files to send in order ('-' is stdin); default stdin")
    .option("-d, --data <string>", "send this string instead of stdin")
    .option("--vm <vm>", "host: the VM (name, pid or uuid; pid:N, uuid:U or name:NAME to be explicit) whose port PORT is, same as VM:PORT")
    .option("--linger <seconds>", "host: stay connected this long after QEMU has read everything", "1")
    .option("--no-wait", "exit at once (code 6) if no host is connected")
    .option("-t, --timeout <seconds>", "give up (code 7) if no host connects within this time")
    .addHelpText(
      "after",
      "\nA port write blocks until the host connects: send waits for it (bounded by --timeout), writes\n" +
        "in the kernel's 32 KiB pieces, and fails with code 9 and the byte count if the host leaves midway.\n\n" +
        "Examples:\n  vmchan send org.example.log.0 < app.log\n  vmchan send --data 'hello' org.example.cmd.0\n",
    )
    .action(async (port, files, opts) => {
      await run(async (ctx) => {
        const { parseSeconds } = await import("../lib/args.ts");
        const { send } = await import("../lib/send.ts");
        return send(ctx, opts.vm === undefined ? port : `${opts.vm}:${port}`, files, {
          lingerMs: parseSeconds(opts.linger, "--linger"),
          data: opts.data,
          wait: opts.wait,
          timeoutMs: opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, "--timeout"),
        });
      });
    });
  return cmd as unknown as Command;
}
