import { escapeLines } from "./escape.ts";

/** What a command reads from and writes to; tests pass fakes, the CLI passes the real process. */
export interface Context {
  /** Text output (tables, JSON). Data output of cat goes to `stdoutFd`. */
  readonly out: (text: string) => void;
  /** Diagnostics. */
  readonly err: (text: string) => void;
  /** Root under which /sys, /dev and /proc are read: "/" on a live system, a fixture tree in tests. */
  readonly root: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether stdout is a terminal (tables get padded, control characters escaped). */
  readonly isTTY: boolean;
}

/**
 * The real process context. Diagnostics pass through escapeLines on their way to stderr: a message that missed
 * its own escaping still cannot drive the terminal (its lines stay lines).
 */
export function processContext(root = "/"): Context {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(escapeLines(text)),
    root,
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
  };
}

/** `root` joined with an absolute path, without doubling slashes. */
export function under(root: string, absolute: string): string {
  if (root === "/" || root === "") return absolute;
  return root.replace(/\/+$/, "") + absolute;
}
