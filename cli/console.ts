import { Command } from "@commander-js/extra-typings";
import { run } from "./run.ts";

/** `vmchan console TARGET`: an interactive terminal on a VM's console (or any) port. */
export function consoleCommand(): Command {
  const cmd = new Command("console")
    .description("host: interactive terminal on a VM's console port (or a serial port with a getty)")
    .argument("<target>", "VM (its first console port), VM:NAME, unix:PATH or tcp:HOST:PORT")
    .option("-e, --escape <char>", "escape key: ^X for Ctrl-X, one character, or none", "^]")
    .addHelpText(
      "after",
      "\nThe local terminal is put in raw mode (Ctrl-C, Ctrl-Z go to the guest) and restored on exit,\n" +
        "on SIGTERM and SIGHUP, and on errors. Escape, then q: quit (exit 0); escape twice: send it once;\n" +
        "escape then ?: help. A console shows nothing it printed before you connected: press Enter\n" +
        "for a prompt. Standard input must be a terminal; for pipes use 'vmchan bridge - VM:NAME'.\n\n" +
        "Examples:\n" +
        "  vmchan console myvm                      # guest: vmchan getty\n" +
        "  vmchan console myvm:org.example.login.0  # guest: vmchan getty org.example.login.0\n" +
        "  vmchan console --escape '^A' unix:/run/vm1/console.sock\n",
    )
    .action(async (target, opts) => {
      await run(async (ctx) => {
        const { consoleCommand: consoleSession } = await import("../lib/console/console.ts");
        return consoleSession(ctx, target, { escape: opts.escape });
      });
    });
  return cmd as unknown as Command;
}
