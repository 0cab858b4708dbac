import { escapeText, safeJson } from "./escape.ts";

/**
 * Widest a table cell is shown, in characters. Names and paths come from the other side and can be any length
 * (a 120 KB `-name`); padding every row to the longest would multiply it by the row count. Longer values end in
 * an ellipsis; `--json` has them whole.
 */
export const MAX_CELL = 80;

/** A cell as shown: escaped (no control character reaches the terminal, no newline forges a row), then capped. */
export function tableCell(value: string, max = MAX_CELL): string {
  const text = escapeText(value);
  if (text.length <= max) return text;
  let cut = max - 1;
  // Never split a surrogate pair.
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut--;
  return text.slice(0, cut) + "…";
}

/** Gathers text into chunks of about 64 KiB for `write`, so output is neither one giant string nor a write per cell. */
export class ChunkedWriter {
  #parts: string[] = [];
  #size = 0;
  constructor(private readonly write: (text: string) => void) {}
  add(text: string): void {
    this.#parts.push(text);
    this.#size += text.length;
    if (this.#size >= 64 * 1024) this.flush();
  }
  flush(): void {
    if (this.#size === 0) return;
    this.write(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
  }
}

/**
 * Writes left-aligned columns separated by two spaces, row by row; the last column is not padded. `rows` is
 * called twice (once for the widths, once to print), so rows are made as they are printed, not held.
 */
export function writeTable(header: readonly string[], rows: () => Iterable<readonly string[]>, out: ChunkedWriter): void {
  const widths = header.map((h) => h.length);
  for (const r of rows()) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i]!, tableCell(r[i] ?? "").length);
  }
  const line = (cells: readonly string[]) => {
    let s = "";
    for (let i = 0; i < header.length; i++) {
      const c = tableCell(cells[i] ?? "");
      s += i === header.length - 1 ? c : c.padEnd(widths[i]!) + "  ";
    }
    return s.trimEnd() + "\n";
  };
  out.add(line(header));
  for (const r of rows()) out.add(line(r));
}

/** The table as one string (small tables; see writeTable). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  let text = "";
  const out = new ChunkedWriter((t) => (text += t));
  writeTable(header, () => rows, out);
  out.flush();
  return text;
}

const _isPlain = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Writes `value` as `safeJson(value, 2)` would, piece by piece: arrays element by element, so a listing of
 * 100,000 ports is never one string. Objects whose values are all scalars are written whole.
 */
export function writeJson(value: unknown, out: ChunkedWriter, indent = ""): void {
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (value.length === 0) return out.add("[]");
    out.add("[\n");
    value.forEach((v, i) => {
      out.add(inner);
      writeJson(v === undefined || typeof v === "function" ? null : v, out, inner);
      out.add(i < value.length - 1 ? ",\n" : "\n");
    });
    return out.add(indent + "]");
  }
  if (_isPlain(value) && typeof value.toJSON !== "function") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== "function");
    if (entries.every(([, v]) => typeof v !== "object" || v === null)) {
      return out.add(safeJson(value, 2).replaceAll("\n", "\n" + indent));
    }
    out.add("{\n");
    entries.forEach(([k, v], i) => {
      out.add(`${inner}${safeJson(k)}: `);
      writeJson(v, out, inner);
      out.add(i < entries.length - 1 ? ",\n" : "\n");
    });
    return out.add(indent + "}");
  }
  out.add(safeJson(value) ?? "null");
}
