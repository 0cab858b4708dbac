import { UsageError } from "../errors.ts";

/** The default escape key, Ctrl-] (as telnet and virsh console). */
export const DEFAULT_ESCAPE = 0x1d;

/**
 * Parses `--escape`: `^X` (a control key: `^]`, `^A`, `^?` for DEL), one ASCII character, or
 * `none` (no escape: the console then ends only by a signal or when the VM closes it).
 */
export function parseEscapeKey(text: string): number | null {
  if (text.toLowerCase() === "none") return null;
  const caret = text.match(/^\^(.)$/);
  if (caret) {
    const c = caret[1]!.toUpperCase().charCodeAt(0);
    if (c === 0x3f) return 0x7f;
    if (c >= 0x40 && c <= 0x5f) return c - 0x40;
  } else if (text.length === 1 && text.charCodeAt(0) < 0x80) {
    return text.charCodeAt(0);
  }
  throw new UsageError(`--escape "${text}" is not a key: expected ^X (such as ^] or ^A), one ASCII character, or none`, "see 'vmchan console --help'");
}

/** The key as a person reads it: "Ctrl-]", "~". */
export function describeKey(key: number): string {
  if (key === 0x7f) return "Ctrl-?";
  if (key < 0x20) return `Ctrl-${String.fromCharCode(key + 0x40)}`;
  return String.fromCharCode(key);
}

/** What the keyboard input means, in order: bytes for the guest, or a local command. */
export type KeyEvent = { kind: "data"; bytes: Uint8Array } | { kind: "quit" } | { kind: "help" };

/**
 * The escape-key state machine. After the escape key: `q` (or `Q`) quits, the escape key
 * again sends one escape key, `?` asks for help; any other key is sent along with the escape key, so
 * nothing typed is lost. The state carries across reads (the escape and the `q` may come apart).
 */
export class EscapeFilter {
  private armed = false;

  constructor(private readonly key: number | null) {}

  /** Splits one read of keyboard input into events; nothing after a quit is returned. */
  push(input: Uint8Array): KeyEvent[] {
    if (this.key === null) return input.byteLength ? [{ kind: "data", bytes: input }] : [];
    const events: KeyEvent[] = [];
    let out: number[] = [];
    const flush = () => {
      if (out.length) events.push({ kind: "data", bytes: Uint8Array.from(out) });
      out = [];
    };
    for (const b of input) {
      if (!this.armed) {
        if (b === this.key) this.armed = true;
        else out.push(b);
        continue;
      }
      this.armed = false;
      if (b === 0x71 || b === 0x51) {
        flush();
        events.push({ kind: "quit" });
        return events;
      }
      if (b === 0x3f) {
        flush();
        events.push({ kind: "help" });
      } else if (b === this.key) out.push(b);
      else out.push(this.key, b);
    }
    flush();
    return events;
  }

  /** Whether the escape key was the last key (the next one is a command). */
  get pending(): boolean {
    return this.armed;
  }
}
