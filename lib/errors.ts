import { clipText, escapeLines } from "./escape.ts";
import { ExitCode } from "./exit-codes.ts";

/**
 * An error the user can act on: printed as one line (`vmchan: MESSAGE` then an optional hint),
 * never with a stack trace, and mapped to a documented exit code.
 */
export class VmchanError extends Error {
  readonly code: number;
  readonly hint: string | undefined;
  constructor(message: string, options: { code?: number; hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "VmchanError";
    this.code = options.code ?? ExitCode.failure;
    this.hint = options.hint;
  }
}

/** A usage error: bad option, address or arity (exit 2, with a --help hint). */
export class UsageError extends VmchanError {
  constructor(message: string, hint = "see 'vmchan --help'") {
    super(message, { code: ExitCode.usage, hint });
    this.name = "UsageError";
  }
}

/**
 * The line (or two) printed for an error; a bug keeps its stack. Messages carry names and text from the other
 * side (ports, VMs, paths, QEMU's words): they are escaped here, in the one place every error is printed, so
 * no control character reaches the terminal and no newline forges a second line.
 */
export function formatError(err: unknown): { text: string; code: number } {
  if (err instanceof VmchanError) {
    if (err.code === ExitCode.brokenPipe) return { text: "", code: err.code };
    const hint = err.hint ? ` (hint: ${clipText(err.hint, 500)})` : "";
    return { text: `vmchan: ${clipText(err.message)}${hint}\n`, code: err.code };
  }
  const stack = err instanceof Error ? (err.stack ?? String(err)) : String(err);
  return {
    text: `vmchan: internal error, please report it:\n${escapeLines(stack)}\n`,
    code: ExitCode.internal,
  };
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The candidates close enough to `input` to suggest, best first. */
export function didYouMean(input: string, candidates: readonly string[]): string[] {
  const scored = candidates
    .map((c) => ({ c, d: c.includes(input) || input.includes(c) ? 1 : distance(input, c) }))
    .filter(({ c, d }) => d <= Math.max(2, Math.floor(c.length / 3)))
    .sort((x, y) => x.d - y.d);
  return scored.map(({ c }) => c);
}

/** The errno code of a node/Bun system error, if any. */
export function errnoOf(err: unknown): string | undefined {
  if (err && typeof err === "object" && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}
