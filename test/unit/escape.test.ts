import { describe, expect, test } from "bun:test";
import { escapeControls, escapingSink } from "../../lib/escape.ts";

const esc = (s: string | Uint8Array) => Buffer.from(escapeControls(typeof s === "string" ? Buffer.from(s) : s, { pending: false })).toString();

describe("terminal escaping of guest output", () => {
  test("control sequences are shown, not obeyed", () => {
    expect(esc("\x1b]0;pwned\x07\x1b[2Jhello")).toBe("^[]0;pwned^G^[[2Jhello");
    expect(esc("a\x00b\x7fc")).toBe("a^@b^?c");
  });
  test("tab, newline, carriage return and UTF-8 text pass through", () => {
    expect(esc("é\tü\r\nok €")).toBe("é\tü\r\nok €");
  });
  test("UTF-8 C1 controls are escaped, also across a chunk boundary", async () => {
    expect(esc(Buffer.from([0x61, 0xc2, 0x9b, 0x62]))).toBe("a\\u009bb");
    const out: Buffer[] = [];
    const sink = escapingSink({ write: async (c) => void out.push(Buffer.from(c)) });
    await sink.write(Buffer.from([0x61, 0xc2]));
    await sink.write(Buffer.from([0x9b, 0x62, 0xc2]));
    await sink.write(Buffer.from([0xa9])); // "©" split across chunks is kept
    await sink.finish?.();
    expect(Buffer.concat(out).toString()).toBe("a\\u009bb©");
  });
});
