import { RootCommand, type Command as TabCommand } from "@bomb.sh/tab";
import { under } from "./context.ts";
import { listGuestPorts } from "./guest/ports.ts";
import { UsageError } from "./errors.ts";
import { closingQuote, quoteForBash, splitShellWords, type ShellWord } from "./shell-words.ts";

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
  return (argName) => (argName === "vm" ? vms : ["port", "address", "a", "b"].includes(argName) ? ports : []);
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

/** Most candidates one request answers and longest value offered: a hostile /proc or sysfs must not flood the shell. */
export const MAX_CANDIDATES = 1000;
export const MAX_CANDIDATE_LENGTH = 1024;
const MAX_DESCRIPTION_LENGTH = 200;

/** Control, format (bidi overrides, zero-width) and line/paragraph separator characters. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const UNPRINTABLE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
/** Spaces other than the ASCII one (no-break, ideographic...): a name with one reads as two words. */
const LOOKALIKE_SPACE = /[^\S ]|[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/u;

/**
 * Whether `value` may be offered to a shell at all. Names come from other people's VMs: one with a newline
 * would forge a second candidate, a tab a description, an escape sequence would drive the terminal. Such
 * names are left out (they can still be typed), never rewritten into a different name.
 */
export function isOfferable(value: string): boolean {
  return value !== "" && value.length <= MAX_CANDIDATE_LENGTH && !UNPRINTABLE.test(value) && !value.includes("\uFFFD") && !LOOKALIKE_SPACE.test(value);
}

/** A description as a shell may show it: unprintable characters as "?", one bounded line. */
export function printableDescription(text: string): string {
  const flat = text.replace(UNPRINTABLE_ALL, "?");
  return flat.length > MAX_DESCRIPTION_LENGTH ? `${flat.slice(0, MAX_DESCRIPTION_LENGTH - 3)}...` : flat;
}

/**
 * The completion script for `shell`. It calls `vmchan complete` for every request and never evaluates a
 * candidate or the command line: bash gets replies already quoted by the binary, zsh's compadd and fish
 * quote what they insert. Candidates are never word-split or glob-expanded.
 */
export function completionScript(shell: string, program = "vmchan"): string {
  if (!(SHELLS as readonly string[]).includes(shell))
    throw new UsageError(`no completions for shell "${shell}"`, `choose one of ${SHELLS.join(", ")}`);
  if (!/^[A-Za-z0-9_-]+$/.test(program)) throw new UsageError(`cannot write completions for program "${program}"`, "use a plain program name");
  const fn = `__${program.replace(/-/g, "_")}_complete`;
  if (shell === "bash") return _bashScript(program, fn);
  if (shell === "zsh") return _zshScript(program);
  return _fishScript(program, fn);
}

function _bashScript(program: string, fn: string): string {
  return `# bash completion for ${program}
# Candidates come from '${program} complete --shell bash', already quoted for the word being completed.
# Nothing here evaluates a candidate or the command line, and no candidate is word-split or glob-expanded.

${fn}() {
    local -a ${fn}_lines=()
    local ${fn}_word=\${2-\${COMP_WORDS[COMP_CWORD]-}}
    if [[ -n \${COMP_LINE+set} && -n \${COMP_POINT+set} ]]; then
        mapfile -t ${fn}_lines < <(command ${program} complete --shell bash --word "\$${fn}_word" --line "\${COMP_LINE:0:COMP_POINT}" 2>/dev/null)
    else
        mapfile -t ${fn}_lines < <(command ${program} complete --shell bash --word "\$${fn}_word" -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
    fi
    COMPREPLY=()
    local ${fn}_n=\${#${fn}_lines[@]}
    [[ \$${fn}_n -gt 0 && \${${fn}_lines[${fn}_n-1]} == :* ]] || return 0
    COMPREPLY=("\${${fn}_lines[@]:0:${fn}_n-1}")
    return 0
}

complete -F ${fn} ${program}
`;
}

function _zshScript(program: string): string {
  return `#compdef ${program}
# zsh completion for ${program}
# Candidates come from '${program} complete'; compadd quotes what it inserts. Nothing here evaluates a
# candidate or the command line, and no candidate is word-split or glob-expanded.

_${program}() {
    setopt localoptions noglobsubst noshwordsplit noksharrays
    local -a request lines values shown
    local out line value desc tab=$'\\t'
    request=("\${(@Q)words[2,CURRENT-1]}" "\${(Q)PREFIX}")
    out="$(command ${program} complete -- "\${request[@]}" 2>/dev/null)"
    lines=("\${(@f)out}")
    [[ \${#lines} -gt 0 && "\${lines[-1]}" == :* ]] || return 1
    for line in "\${(@)lines[1,-2]}"; do
        [[ -n "\$line" ]] || continue
        value="\${line%%\$tab*}"
        values+=("\$value")
        if [[ "\$line" == *"\$tab"?* ]]; then
            desc="\${line#*\$tab}"
            shown+=("\$value -- \$desc")
        else
            shown+=("\$value")
        fi
    done
    [[ \${#values} -gt 0 ]] || return 1
    # An option's value after "=": the candidates are values, the option stays as typed.
    [[ "\$PREFIX" == -*=* ]] && compset -P '*='
    compadd -l -d shown -a values
}

if [[ "\${funcstack[1]}" == "_${program}" ]]; then
    _${program} "$@"
elif (( \${+functions[compdef]} )); then
    compdef _${program} ${program}
fi
`;
}

function _fishScript(program: string, fn: string): string {
  return `# fish completion for ${program}
# Candidates come from '${program} complete'; fish escapes what it inserts. Nothing here evaluates a
# candidate or the command line.

function ${fn}_unquote
    # The token as the program will see it; an open quote is closed for the purpose.
    for close in '' "'" '"'
        if set -l value (string unescape -- "$argv[1]$close" 2>/dev/null)
            printf '%s\\n' "$value"
            return
        end
    end
    printf '%s\\n' "$argv[1]"
end

function ${fn}
    # The words before the cursor come unquoted already (not expanded); the current token as typed.
    set -l request (commandline -opc)[2..-1]
    set -a request (${fn}_unquote (commandline -ct)[1])
    set -l lines (command ${program} complete -- $request 2>/dev/null)
    test (count $lines) -gt 0; or return
    string match -q -- ':*' "$lines[-1]"; or return
    set -e lines[-1]
    # An option's value after "=": the candidates are values, fish completes the whole token.
    set -l option (string match -r -- '^-[^=]*=' "$request[-1]")
    for line in $lines
        printf '%s%s\\n' "$option" "$line"
    end
end

complete -c ${program} -e
complete -c ${program} -f -a '(${fn})'
`;
}

/** Answers a request from the bash script: replies that replace \`word\` (readline's word), quoted for bash, then \`:directive\`. */
export function completeForBash(
  root: CommandSpec,
  request: { word: string; line?: string; words?: string[] },
  candidates: Candidates,
): string {
  let tokens: ShellWord[];
  if (request.line !== undefined) {
    tokens = splitShellWords(request.line);
    // The command itself, and assignments before it, are not words of the request.
    let i = 0;
    while (i < tokens.length - 1 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(tokens[i]!.raw)) i++;
    tokens = tokens.slice(Math.min(i + 1, tokens.length - 1));
  } else {
    tokens = (request.words ?? [""]).map(_lexWord);
    if (tokens.length === 0) tokens = [{ raw: "", value: "", state: "none" }];
  }
  const cur = tokens[tokens.length - 1]!;
  const answer = completeWords(
    root,
    tokens.map((t) => t.value),
    candidates,
  ).split("\n");
  // The directive is the last line; a name may start with ":" too.
  if (answer.at(-1) === "") answer.pop();
  const directive = answer.pop() ?? ":0";
  const option = /^(-[^=]*=)/.exec(cur.value)?.[1] ?? "";
  const lead = cur.raw.endsWith(request.word) ? cur.raw.length - request.word.length : 0;
  const replies: string[] = [];
  // A word bash would expand as typed ("$, `, $(...)) gets no replies: a name appended to it could complete the
  // expansion into a command substitution.
  if (cur.expands) answer.length = 0;
  for (const line of answer) {
    if (line === "") continue;
    const tab = line.indexOf("\t");
    let value = tab < 0 ? line : line.slice(0, tab);
    if (option && !value.startsWith(option)) value = option + value;
    if (!value.startsWith(cur.value) || !isOfferable(value)) continue;
    let reply: string;
    if (lead === 0 && cur.state === "none" && !cur.escapePending) {
      // Readline replaces the whole word: write the name quoted from scratch (a typed "~" or "*" is not kept).
      reply = quoteForBash(value)!;
    } else {
      const rest = quoteForBash(value.slice(cur.value.length), cur.state, cur.escapePending);
      if (rest === null) continue;
      // The open quote is closed here: readline does not close it when the reply already ends in that quote.
      reply = (cur.raw + rest + closingQuote(cur.state)).slice(lead);
    }
    replies.push(reply);
  }
  return replies.map((r) => `${r}\n`).join("") + `${directive}\n`;
}

/** One word from bash's COMP_WORDS, as typed. */
function _lexWord(raw: string): ShellWord {
  const parts = splitShellWords(raw);
  if (parts.length === 1) return { ...parts[0]!, raw };
  const word: ShellWord = { raw, value: parts.map((p) => p.value).join(" "), state: parts[parts.length - 1]!.state };
  if (parts.some((p) => p.expands)) word.expands = true;
  return word;
}

/** Answers a completion request: one `value<TAB>description` line per candidate, then `:directive`. */
export function completeWords(root: CommandSpec, words: string[], candidates: Candidates): string {
  const tab = new RootCommand();
  let offered = 0;
  // Every value offered passes here: unprintable names are left out, descriptions made printable, the count bounded.
  const offer = (complete: (v: string, d: string) => void, value: string, description: string, live = false) => {
    if (offered >= MAX_CANDIDATES || !isOfferable(value)) return;
    // A name from this machine that starts with "-" would be read as an option (--exec=... runs a program).
    if (live && value.startsWith("-")) return;
    offered++;
    complete(value, printableDescription(description));
  };
  const addOptions = (target: TabCommand, spec: CommandSpec) => {
    for (const o of spec.options) {
      const handler = o.takesValue
        ? (complete: (v: string, d: string) => void) => {
            o.choices?.forEach((c) => offer(complete, c, ""));
            for (const c of candidates(o.long)) offer(complete, c.value, c.description, true);
          }
        : undefined;
      if (handler) target.option(o.long, o.description, handler, o.short);
      else target.option(o.long, o.description, o.short ?? "");
    }
    for (const a of spec.args) {
      target.argument(
        a.name,
        (complete) => {
          a.choices?.forEach((c) => offer(complete, c, ""));
          for (const c of candidates(a.name)) offer(complete, c.value, c.description, true);
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
  // A word with a newline cannot be a name on the command line; the engine sees one line per word.
  return captureLog(() => tab.parse(words.map((w) => w.replace(UNPRINTABLE_ALL, "?"))));
}
