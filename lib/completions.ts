import { RootCommand, script, type Command as TabCommand } from "@bomb.sh/tab";
import { clipText, escapeText } from "./escape.ts";
import { under } from "./context.ts";
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

/** Values for `<port>`-like arguments and `--vm`: this guest's port names, and `VM:NAME` of every VM on a host. */
export async function liveCandidates(root = "/"): Promise<Candidates> {
  const ports: { value: string; description: string }[] = [];
  const vms: { value: string; description: string }[] = [];
  try {
    for (const p of listGuestPorts(root)) if (p.name !== null) ports.push({ value: p.name, description: `${p.kind} ${p.device}` });
  } catch {
    // not a guest
  }
  try {
    // No QMP: completion must be instant and must not take a VM's only QMP slot.
    const { discoverHosts } = await import("./host/discover.ts");
    const host = await discoverHosts({ procRoot: under(root, "/proc"), libvirtDirs: [], useQmp: false });
    for (const vm of host.vms) {
      const vmName = vm.name ?? String(vm.pid);
      vms.push({ value: vmName, description: `QEMU pid ${vm.pid}` });
      for (const p of vm.ports) if (p.name) ports.push({ value: `${vmName}:${p.name}`, description: `${p.kind} ${p.path ?? ""}`.trim() });
    }
  } catch {
    // no /proc to read
  }
  // A name with a control character, a separator or white space cannot be typed as one word, and printed it
  // would forge candidate lines or reach the terminal through the shell: it is not offered.
  const plain = (c: { value: string; description: string }) => c.value !== "" && !/\s/.test(c.value) && escapeText(c.value) === c.value;
  const offer = (list: { value: string; description: string }[]) =>
    list.filter(plain).map((c) => ({ value: c.value, description: clipText(c.description, 200) }));
  const [vmWords, portWords] = [offer(vms), offer(ports)];
  return (argName) => (argName === "vm" ? vmWords : ["port", "address", "a", "b"].includes(argName) ? portWords : []);
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
        ? (complete: (v: string, d: string) => void) => {
            o.choices?.forEach((c) => complete(c, ""));
            for (const c of candidates(o.long)) complete(c.value, c.description);
          }
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
