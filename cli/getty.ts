import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan getty [PORT...]`: login prompts on console ports (or any port, through a PTY), respawned. */
export function gettyCommand(): Command {
  const cmd = new Command("getty")
    .description("guest: serve login prompts on the console ports (or the ports named), respawning the getty")
    .argument("[ports...]", "ports to serve: name, hvcN, vportNpM or /dev path (default: every console port)")
    .option("-a, --autologin <user>", "log USER in without a password (agetty -a; busybox getty: login -f)")
    .option("--allow-root", "allow --autologin to log in root (uid 0): a root shell for anyone who reaches the port")
    .option("--term <type>", "TERM of the login sessions", "vt100")
    .addHelpText(
      "after",
      "\nRuns agetty when installed, else busybox getty, and must run as root. A console port (/dev/hvcN)\n" +
        "gets the getty directly; the host cannot be seen connecting there, and what the getty printed\n" +
        "before the host connected is lost: press Enter on the host for a prompt. A serial port gets its\n" +
        "getty on a PTY, a fresh one for each host connection (a prompt at once); a host disconnect hangs\n" +
        "the session up. A getty that exits is started again at once; one that dies within 1 s is started\n" +
        "again after 1, 2, 4 ... 30 s. SIGTERM, SIGINT or SIGHUP stop every getty and session, exit 0.\n\n" +
        "Examples:\n" +
        "  vmchan getty                                  # every console port (hvc0 ...)\n" +
        "  vmchan getty org.example.login.0              # a serial port, through a PTY\n" +
        "  vmchan getty --autologin ci hvc0              # host: vmchan console myvm\n",
    )
    .action(async (ports, opts) => {
      await run(async (ctx) => {
        const { getty } = await import("../lib/getty/getty.ts");
        return getty(ctx, ports, { autologin: opts.autologin, allowRoot: opts.allowRoot, term: opts.term });
      });
    });
  return cmd as unknown as Command;
}
