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
