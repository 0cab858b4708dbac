import { escapeLines } from "./escape.ts";
import { statSync } from "node:fs";
import { UsageError, VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { closedAtStart, OutputFailed } from "./fd-stream.ts";

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
  /** The first failed write of `out` (a full disk, a reader gone), if any: the command must not end in success. */
  readonly outputFailure?: () => unknown;
}

/**
 * The real process context. Text output to a stdout that was closed at start fails (OutputFailed) instead of
 * vanishing. Diagnostics pass through escapeLines on their way to stderr: a message that missed its own escaping
 * still cannot drive the terminal (its lines stay lines).
 */
export function processContext(root = "/"): Context {
  let checked = false;
  let failure: unknown = null;
  return {
    out: (text) => {
      if (!checked) {
        checked = true;
        if (closedAtStart(1)) throw new OutputFailed("standard output", "it was closed when vmchan started");
      }
      void process.stdout.write(text, (err) => {
        if (err && !failure) failure = err;
      });
    },
    outputFailure: () => failure,
    err: (text) => void process.stderr.write(escapeLines(text)),
    root,
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
  };
}

/** Refuses a --root that is empty (it would silently mean "/") or not a directory. */
export function checkRoot(root: string): void {
  if (root === "") throw new UsageError("--root must not be empty", "give a directory, or leave --root out for /");
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    throw new VmchanError(`--root "${root}": no such directory`, { code: ExitCode.notFound, hint: "give an existing directory" });
  }
  if (!isDir) throw new VmchanError(`--root "${root}": not a directory`, { code: ExitCode.notFound, hint: "give an existing directory" });
}

/** `root` joined with an absolute path, without doubling slashes. */
export function under(root: string, absolute: string): string {
  if (root === "/" || root === "") return absolute;
  return root.replace(/\/+$/, "") + absolute;
}
