import { RootCommand, script, type Command as TabCommand } from "@bomb.sh/tab";
import { listGuestPorts } from "./guest/ports.ts";
import { UsageError } from "./errors.ts";

/** A command as the completion engine needs it; cli/ derives it from the commander tree. */
export interface CommandSpec {
  name: string;
  description: string;
  options: { long: string; short?: string; description: string; takesValue: boolean; choices?: readonly string[] }[];
  args: { name: string; variadic: boolean; choices?: readonly string[] }[];
  subcommands: CommandSpec[];
}

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** Argument names whose values come from this machine at completion time. */
export type Candidates = (argName: string) => { value: string; description: string }[];

/** Port names of this guest, for `<port>`-like arguments; empty where there are none (a host, for now). */
export function liveCandidates(root = "/"): Candidates {
  return (argName) => {
    if (!["port", "address", "a", "b"].includes(argName)) return [];
    try {
      return listGuestPorts(root)
        .filter((p) => p.name !== null)
        .map((p) => ({ value: p.name!, description: `${p.kind} ${p.device}` }));
    } catch {
      return [];
    }
  };
}

/** Runs `fn` and returns what it printed with console.log (the completion library prints). */
function captureLog(fn: () => void): string {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => void lines.push(parts.map(String).join(" "));
  try {
    fn();
  } finally {
    console.log = original;
  }
  return lines.join("\n") + "\n";
}

/** The completion script for `shell`; it calls `vmchan complete -- WORDS` for dynamic values. */
export function completionScript(shell: string, program = "vmchan"): string {
  if (!(SHELLS as readonly string[]).includes(shell))
    throw new UsageError(`no completions for shell "${shell}"`, `choose one of ${SHELLS.join(", ")}`);
  return captureLog(() => script(shell, program, program));
}

/** Answers a completion request: one `value<TAB>description` line per candidate, then `:directive`. */
export function completeWords(root: CommandSpec, words: string[], candidates: Candidates): string {
  const tab = new RootCommand();
  const addOptions = (target: TabCommand, spec: CommandSpec) => {
    for (const o of spec.options) {
      const handler = o.takesValue
        ? (complete: (v: string, d: string) => void) => o.choices?.forEach((c) => complete(c, ""))
        : undefined;
      if (handler) target.option(o.long, o.description, handler, o.short);
      else target.option(o.long, o.description, o.short ?? "");
    }
    for (const a of spec.args) {
      target.argument(
        a.name,
        (complete) => {
          a.choices?.forEach((c) => complete(c, ""));
          for (const c of candidates(a.name)) complete(c.value, c.description);
        },
        a.variadic,
      );
    }
  };
  addOptions(tab, root);
  const walk = (spec: CommandSpec, prefix: string) => {
    for (const sub of spec.subcommands) {
      const path = prefix ? `${prefix} ${sub.name}` : sub.name;
      addOptions(tab.command(path, sub.description), sub);
      walk(sub, path);
    }
  };
  walk(root, "");
  return captureLog(() => tab.parse(words));
}
