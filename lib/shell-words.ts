/**
 * Splitting a shell command line into words and quoting text for bash, without ever expanding anything:
 * completion reads what the user typed and writes back names that came from other people's VMs, so
 * `$(...)`, backquotes, globs and variables are plain characters here, never evaluated.
 */

/** The quoting in force at the end of a word: none, inside '...', inside "..." or inside $'...'. */
export type QuoteState = "none" | "single" | "double" | "ansi";

/** One word of a command line: its text as typed, its value after quote removal, the quoting open at its end. */
export interface ShellWord {
  raw: string;
  value: string;
  state: QuoteState;
  /** Whether the word ends in a backslash that quotes whatever comes next. */
  escapePending?: boolean;
  /**
   * Whether bash would expand part of the word as typed: an unquoted or double-quoted `$` or backquote. Text
   * added to such a word can complete the expansion (a typed `"$` plus a name `(cmd)` is `"$(cmd)`), so
   * completion offers nothing for it.
   */
  expands?: boolean;
}

const ANSI_ESCAPES: Record<string, string> = { a: "\x07", b: "\b", e: "\x1b", E: "\x1b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", "'": "'", '"': '"', "?": "?" };

/**
 * Splits `line` into words the way bash's parser would for quoting (unquoted blanks separate words;
 * '...', "...", $'...' and backslash quote), with no expansion at all. The last word is the one being
 * completed: it is empty when the line ends with an unquoted blank. Operators (`;`, `|`, `&`, ...) start
 * a new command; only the words of the last command are returned.
 */
export function splitShellWords(line: string): ShellWord[] {
  const words: ShellWord[] = [];
  let raw = "";
  let value = "";
  let state: QuoteState = "none";
  let started = false;
  let escapePending = false;
  let expands = false;
  const flush = () => {
    if (started) words.push(expands ? { raw, value, state: "none", expands } : { raw, value, state: "none" });
    raw = "";
    value = "";
    started = false;
    expands = false;
  };
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (state === "none") {
      if (ch === " " || ch === "\t" || ch === "\n") {
        flush();
        continue;
      }
      if (ch === ";" || ch === "|" || ch === "&" || ch === "(" || ch === ")" || ch === "<" || ch === ">") {
        flush();
        // A new command starts after a separator; redirections are not words of the command.
        if (ch !== "<" && ch !== ">") words.length = 0;
        continue;
      }
      started = true;
      const sub = _substitutionEnd(line, i);
      if (sub > i) {
        // $(...), ${...} and `...` stay one piece of the word, as typed: never run, never split.
        expands = true;
        raw += line.slice(i, sub);
        value += line.slice(i, sub);
        i = sub - 1;
        continue;
      }
      raw += ch;
      if (ch === "\\") {
        if (i + 1 < line.length) {
          const next = line[++i]!;
          raw += next;
          if (next !== "\n") value += next;
        } else escapePending = true;
      } else if (ch === "'") state = "single";
      else if (ch === '"') state = "double";
      else if (ch === "$" && line[i + 1] === "'") {
        raw += "'";
        i++;
        state = "ansi";
      } else {
        if (ch === "$") expands = true;
        value += ch;
      }
    } else if (state === "single") {
      raw += ch;
      if (ch === "'") state = "none";
      else value += ch;
    } else if (state === "double") {
      raw += ch;
      if (ch === '"') state = "none";
      else if (ch === "\\" && i + 1 === line.length) escapePending = true;
      else if (ch === "\\" && '$`"\\\n'.includes(line[i + 1]!)) {
        const next = line[++i]!;
        raw += next;
        if (next !== "\n") value += next;
      } else {
        if (ch === "$" || ch === "`") expands = true;
        value += ch;
      }
    } else {
      raw += ch;
      if (ch === "'") state = "none";
      else if (ch === "\\" && i + 1 === line.length) escapePending = true;
      else if (ch === "\\") {
        const next = line[++i]!;
        raw += next;
        value += ANSI_ESCAPES[next] ?? `\\${next}`;
      } else value += ch;
    }
  }
  const last: ShellWord = { raw, value, state };
  if (escapePending) last.escapePending = true;
  if (expands) last.expands = true;
  words.push(last);
  return words;
}

/** Where a `$(`, `${` or backquote substitution starting at `i` ends (after its closing character), or `i`. */
function _substitutionEnd(line: string, i: number): number {
  const two = line.slice(i, i + 2);
  if (line[i] === "`") {
    for (let j = i + 1; j < line.length; j++) {
      if (line[j] === "\\") j++;
      else if (line[j] === "`") return j + 1;
    }
    return line.length;
  }
  if (two !== "$(" && two !== "${") return i;
  const [open, close] = two === "$(" ? ["(", ")"] : ["{", "}"];
  let depth = 0;
  for (let j = i + 1; j < line.length; j++) {
    if (line[j] === "\\") j++;
    else if (line[j] === open) depth++;
    else if (line[j] === close && --depth === 0) return j + 1;
  }
  return line.length;
}

/**
 * Characters bash never treats specially inside a word (as in `printf %q`), less `=` (a leading NAME=... is an
 * assignment under `set -k`) and `%` (a history character in some setups): those are quoted too.
 */
const SAFE = /^[A-Za-z0-9_@+:,./-]$/;

/**
 * `text` written so that, appended to a word whose quoting at that point is `state`, bash reads it back
 * literally: backslashes outside quotes, `'\''` inside single quotes, backslashes (and `!` outside the
 * double quotes, against history expansion) inside double quotes. After a pending backslash the first
 * character goes as it is; null when that backslash would change it (inside "..." or $'...').
 * The caller leaves out text with control characters: they are not written here.
 */
export function quoteForBash(text: string, state: QuoteState = "none", escapePending = false): string | null {
  let out = "";
  let first = escapePending;
  for (const ch of text) {
    if (first) {
      first = false;
      if (state === "none" || (state === "double" && '$`"\\'.includes(ch)) || (state === "ansi" && (ch === "'" || ch === "\\"))) {
        out += ch;
        continue;
      }
      return null;
    }
    if (state === "single") out += ch === "'" ? "'\\''" : ch;
    else if (state === "double") out += ch === "!" ? `"'!'"` : '$`"\\'.includes(ch) ? `\\${ch}` : ch;
    else if (state === "ansi") out += ch === "'" || ch === "\\" ? `\\${ch}` : ch;
    else out += SAFE.test(ch) || ch.codePointAt(0)! >= 0xa0 ? ch : `\\${ch}`;
  }
  return out;
}

/** The quote that closes `state` ("" when none is open). */
export function closingQuote(state: QuoteState): string {
  return state === "single" || state === "ansi" ? "'" : state === "double" ? '"' : "";
}
