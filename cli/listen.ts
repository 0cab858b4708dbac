import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan listen ADDRESS`: serve host sessions on a guest port, or a client-mode chardev on the host. */
export function listenCommand(): Command {
  const cmd = new Command("listen")
    .description("serve each host session on a guest port (or, on the host, unix:PATH for QEMU to connect to)")
    .argument("<address>", "guest PORT, or unix:PATH on the host")
    .option("-k, --keep", "keep serving session after session (default: exit after one)")
    .option("-e, --exec <cmd>", "run CMD for each session with its stdin and stdout wired to the channel (like nc -e)")
    .option("--linger <seconds>", "host side: stay connected this long after QEMU has read everything", "1")
    .option("--raw", "write control characters to a terminal as they are (default: shown as ^X)")
    .option("-v, --verbose", "report each session's byte counts, and a guest port's host connects and disconnects, on stderr")
    .addHelpText(
      "after",
      "\nIn the guest a session runs from a host connect to its disconnect. On the host, unix:PATH is\n" +
        "created mode 0600 for a chardev in client mode: -chardev socket,id=c0,path=PATH,reconnect=1\n" +
        "(reconnect-ms= on QEMU 9+). A socket left at PATH is replaced only if it is this user's and\n" +
        "nothing listens on it; anything else there is refused and left alone. On exit (also SIGTERM,\n" +
        "SIGINT, SIGHUP) the socket is removed if PATH still names it, and --exec commands are ended.\n\n" +
        "Examples:\n  guest:  vmchan listen -k --exec 'sh' org.example.shell.0\n  host:   vmchan listen -k unix:/run/vm1-log.sock >> vm1.log\n",
    )
    .action(async (address, opts) => {
      await run(async (ctx) => {
        const { parseSeconds } = await import("../lib/args.ts");
        const { listen } = await import("../lib/listen.ts");
        return listen(ctx, address, { keep: opts.keep, exec: opts.exec, lingerMs: parseSeconds(opts.linger, "--linger"), verbose: opts.verbose, raw: opts.raw });
      });
    });
  return cmd as unknown as Command;
}
