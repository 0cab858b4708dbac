import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan bridge A B`: relay both ways between two addresses, reconnecting. */
export function bridgeCommand(): Command {
  const cmd = new Command("bridge")
    .description("relay both ways between two addresses, session after session")
    .argument("<a>", "address: PORT, VM:NAME, unix:PATH, unix-listen:PATH, tcp:HOST:PORT, tcp-listen:[HOST:]PORT, exec:CMD, -")
    .argument("<b>", "address (same kinds)")
    .option("--once", "exit after the first session instead of reconnecting")
    .option("--linger <seconds>", "host side: stay connected this long after QEMU has read everything", "1")
    .option("--raw", "write control characters to a terminal as they are (default: shown as ^X)")
    .option("-v, --verbose", "report each session's byte counts, and a guest port's host connects and disconnects, on stderr")
    .addHelpText(
      "after",
      "\nA session starts when the passive side (a guest port's host connects, a listener accepts)\n" +
        "is there, then the active side (connect, exec) is opened. When either side ends, the other\n" +
        "gets 0.5 s to deliver what is in flight, then both close and the bridge waits for the next\n" +
        "session. TCP peers get a half-close at end of data; VM sockets and ports never do (QEMU\n" +
        "takes a half-close as a disconnect), they are closed once everything is delivered.\n" +
        "A listener keeps at most 16 clients waiting and closes further ones; unix-listen sockets are\n" +
        "made and removed as for 'vmchan listen'. exec: commands run in their own process group, which\n" +
        "is ended with the session and on exit (also SIGTERM, SIGINT, SIGHUP: exit 128 + signal).\n\n" +
        "Examples:\n" +
        "  guest:  vmchan bridge org.example.ssh.0 tcp:127.0.0.1:22\n" +
        "  host:   ssh -o ProxyCommand='vmchan bridge --once - myvm:org.example.ssh.0' user@myvm\n" +
        "  host:   vmchan bridge tcp-listen:2222 myvm:org.example.ssh.0\n",
    )
    .action(async (a, b, opts) => {
      await run(async (ctx) => {
        const { parseSeconds } = await import("../lib/args.ts");
        const { bridgeCommand: bridge } = await import("../lib/bridge.ts");
        return bridge(ctx, a, b, { once: opts.once, lingerMs: parseSeconds(opts.linger, "--linger"), verbose: opts.verbose, raw: opts.raw });
      });
    });
  return cmd as unknown as Command;
}
