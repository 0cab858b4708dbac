import { Argument, Command } from "@commander-js/extra-typings";
import type { CommandSpec } from "../lib/completions.ts";
import { run } from "./run.ts";

/** The commander tree as plain data, for the completion engine (hidden commands left out). */
export function commandSpec(cmd: Command): CommandSpec {
  const visible = (c: Command) => !(c as unknown as { _hidden?: boolean })._hidden;
  return {
    name: cmd.name(),
    description: cmd.description(),
    options: cmd.options
      .filter((o) => o.long && !o.hidden)
      .map((o) => ({
        long: o.long!.replace(/^--/, ""),
        short: o.short?.replace(/^-/, ""),
        description: o.description,
        takesValue: o.required || o.optional,
        choices: o.argChoices,
      })),
    args: cmd.registeredArguments.map((a) => ({ name: a.name(), variadic: a.variadic, choices: a.argChoices })),
    subcommands: (cmd.commands as unknown as Command[]).filter((c) => visible(c) && c.name() !== "help").map(commandSpec),
  };
}

/** `vmchan completions SHELL` and the hidden `vmchan complete -- WORDS` that the scripts call. */
export function completionCommands(program: () => Command): Command[] {
  const completions = new Command("completions")
    .description("print the shell completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"] as const))
    .addHelpText(
      "after",
      "\nExamples:\n  vmchan completions bash > /etc/bash_completion.d/vmchan\n" +
        "  vmchan completions zsh > \"${fpath[1]}/_vmchan\"\n  vmchan completions fish > ~/.config/fish/completions/vmchan.fish\n",
    )
    .action(async (shell) => {
      await run(async (ctx) => {
        ctx.out((await import("../lib/completions.ts")).completionScript(shell));
        return 0;
      });
    });
  const complete = new Command("complete")
    .description("answer a completion request from the shell scripts")
    .argument("[words...]")
    .option("--shell <shell>", "answer for this shell's script (bash: replies quoted for the word being completed)")
    .option("--word <word>", "bash: the word readline replaces, as typed")
    .option("--line <line>", "bash: the command line up to the cursor, as typed (instead of WORDS)")
    .option("--root <dir>", "read /sys and /proc under DIR (a fixture; also VMCHAN_COMPLETE_ROOT, which the scripts pass through)")
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words, opts) => {
      await run(async (ctx) => {
        const lib = await import("../lib/completions.ts");
        const spec = commandSpec(program());
        // Where /sys and /proc are read; a fixture tree in tests.
        const candidates = await lib.liveCandidates(opts.root || ctx.env.VMCHAN_COMPLETE_ROOT || "/");
        if (opts.shell === "bash") ctx.out(lib.completeForBash(spec, { word: opts.word ?? "", line: opts.line, words }, candidates));
        else ctx.out(lib.completeWords(spec, words, candidates));
        return 0;
      });
    });
  return [completions as unknown as Command, complete as unknown as Command];
}
