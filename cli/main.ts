#!/usr/bin/env bun
import { Command, CommanderError } from "@commander-js/extra-typings";
import { formatError } from "../lib/errors.ts";
import { clipText } from "../lib/escape.ts";
import { ExitCode, exitCodeTable } from "../lib/exit-codes.ts";
import { writeTextSync } from "../lib/fd-stream.ts";
import { checkRuntimeEnv } from "../lib/runtime-env.ts";
import { bridgeCommand } from "./bridge.ts";
import { catCommand } from "./cat.ts";
import { completionCommands } from "./completions.ts";
import { consoleCommand } from "./console.ts";
import { gettyCommand } from "./getty.ts";
import { listenCommand } from "./listen.ts";
import { portsCommand } from "./ports.ts";
import { sendCommand } from "./send.ts";
import { versionString } from "./version.ts";

/** The command tree; also walked to generate shell completions. */
export function buildProgram(): Command {
  const program = new Command("vmchan")
    .description("netcat for virtio-serial: find QEMU/KVM guest channels by name and pipe data through them")
    .version(versionString(), "-V, --version", "print the version and the commit it was built from")
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    .addHelpText(
      "after",
      "\nExit codes:\n" + exitCodeTable.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`).join("\n") + "\n",
    );
  program.addCommand(portsCommand());
  program.addCommand(catCommand());
  program.addCommand(sendCommand());
  program.addCommand(listenCommand());
  program.addCommand(bridgeCommand());
  program.addCommand(gettyCommand()).addCommand(consoleCommand());
  const [completions, complete] = completionCommands(buildProgram);
  program.addCommand(completions!);
  program.addCommand(complete!, { hidden: true });
  return program as unknown as Command;
}

/** Commander's error text as one line: "vmchan: unknown option '--x' (did you mean --y?) (hint: ...)". */
function usageLine(text: string, cmd: Command): string {
  const path: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent as Command | null) path.unshift(c.name());
  const help = ["vmchan", ...path, "--help"].join(" ");
  const oneLine = text
    .replace(/^error: /, "")
    .replace(/\s*\n\(Did you mean (.*)\?\)/, " (did you mean $1?)")
    .replace(/\s+/g, " ")
    .trim();
  // The text quotes what was typed, which may be pasted from anywhere: escaped like every other message.
  return `vmchan: ${clipText(oneLine)} (hint: see '${help}')\n`;
}

async function main(argv: string[]): Promise<void> {
  try {
    checkRuntimeEnv(process.env);
  } catch (err) {
    const { text, code } = formatError(err);
    process.stderr.write(text);
    process.exit(code);
  }
  const program = buildProgram();
  // Help and version text: a closed, full or gone stdout is an error, never exit 0 with nothing written.
  let helpFailed: unknown = null;
  const writeOut = (text: string) => {
    if (helpFailed) return;
    try {
      writeTextSync(1, text, "standard output");
    } catch (err) {
      helpFailed = err;
    }
  };
  const configure = (cmd: Command) => {
    cmd.exitOverride();
    cmd.configureOutput({ writeOut, outputError: (text, write) => write(usageLine(text, cmd)) });
    for (const sub of cmd.commands) configure(sub as unknown as Command);
  };
  configure(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const benign = err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help";
      if (helpFailed) {
        const { text, code } = formatError(helpFailed);
        process.stderr.write(text);
        process.exit(code);
      }
      process.exit(benign ? ExitCode.ok : ExitCode.usage);
    }
    throw err;
  }
}

await main(process.argv);
