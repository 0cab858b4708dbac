import type { Sink } from "./endpoint.ts";

const CARET = new Uint8Array([0x5e]); // "^"

/**
 * Makes guest bytes safe to print on the host's terminal, like `cat -v`: C0 controls other than
 * tab, newline and carriage return become ^X, DEL becomes ^?, and UTF-8-encoded C1 controls
 * (U+0080..U+009F, which some terminals obey like ESC) become \u0080. A guest must not be able to
 * drive the host's terminal (retitle it, remap keys, answer back). `pending` carries a lone 0xC2
 * across chunk boundaries.
 */
export function escapeControls(chunk: Uint8Array, state: { pending: boolean }): Uint8Array {
  const out: number[] = [];
  let i = 0;
  if (state.pending) {
    state.pending = false;
    if (chunk.length > 0 && chunk[0]! >= 0x80 && chunk[0]! <= 0x9f) {
      out.push(...Buffer.from(`\\u00${chunk[0]!.toString(16)}`));
      i = 1;
    } else out.push(0xc2);
  }
  for (; i < chunk.length; i++) {
    const b = chunk[i]!;
    if (b === 0x09 || b === 0x0a || b === 0x0d) out.push(b);
    else if (b < 0x20) out.push(CARET[0]!, b + 0x40);
    else if (b === 0x7f) out.push(CARET[0]!, 0x3f);
    else if (b === 0xc2) {
      if (i + 1 >= chunk.length) state.pending = true;
      else if (chunk[i + 1]! >= 0x80 && chunk[i + 1]! <= 0x9f) {
        out.push(...Buffer.from(`\\u00${chunk[i + 1]!.toString(16)}`));
        i++;
      } else out.push(b);
    } else out.push(b);
  }
  return Uint8Array.from(out);
}

/** Fast check: does the chunk need escaping at all (the common case for text is no)? */
function needsEscape(chunk: Uint8Array): boolean {
  for (let i = 0; i < chunk.length; i++) {
    const b = chunk[i]!;
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f || b === 0xc2) return true;
  }
  return false;
}

/** A sink that escapes control characters before they reach a terminal (off with --raw). */
export function escapingSink(inner: Sink): Sink {
  const state = { pending: false };
  return {
    write: (chunk) => inner.write(state.pending || needsEscape(chunk) ? escapeControls(chunk, state) : chunk),
    finish: async () => {
      if (state.pending) {
        state.pending = false;
        await inner.write(new Uint8Array([0xc2]));
      }
      await inner.finish?.();
    },
  };
}

/**
 * What a terminal may obey in text: C0 controls, DEL, C1 controls (U+0080..U+009F; 8-bit terminals take U+009B
 * as CSI), the line and paragraph separators, bidirectional marks, overrides and isolates (they reorder what is shown),
 * and lone surrogates (not text at all).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** The same, but newline and tab pass: for text that is already lines (a stack trace, a multi-line message). */
const UNSAFE_KEEP_LINES = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\r(?!\n)|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function _code(c: string): string {
  const n = c.charCodeAt(0);
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
}

/**
 * Makes a string from the other side (a port, VM or process name, a socket path, QEMU's error text) safe to
 * show in one line of a terminal: every control character, newline included, becomes \xNN (\uNNNN above
 * U+00FF), so it can neither drive the terminal nor forge another line or table row. Plain text is unchanged.
 */
export function escapeText(text: string): string {
  return text.replace(UNSAFE, _code);
}

/** Longest message line printed (errors, notes), in characters: names inside can be any length, a line cannot. */
export const MAX_MESSAGE = 2000;

/** escapeText, then cut to `max` characters with a count of what was left out. */
export function clipText(text: string, max = MAX_MESSAGE): string {
  const safe = escapeText(text);
  if (safe.length <= max) return safe;
  let cut = max;
  const code = safe.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return `${safe.slice(0, cut)}… (${safe.length - cut} more characters)`;
}

/** Like escapeText, but newlines (and CRLF) and tabs stay: for diagnostics that are several lines on purpose. */
export function escapeLines(text: string): string {
  return text.replace(UNSAFE_KEEP_LINES, _code);
}

/**
 * JSON.stringify, plus \u escapes for what it leaves raw but a terminal may obey: DEL, the C1 controls (U+0080..
 * U+009F), U+2028/U+2029 and the bidirectional controls. The result is the same JSON value, printable as is.
 */
export function safeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
