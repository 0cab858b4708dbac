import { describe, expect, test } from "bun:test";
import { VmchanError, formatError } from "../../lib/errors.ts";
import { clipText, escapeControls, escapeLines, escapeText, escapingSink, MAX_MESSAGE, safeJson } from "../../lib/escape.ts";
import { ChunkedWriter, tableCell, writeJson } from "../../lib/table.ts";
import { formatHumanLine, formatJsonLine } from "../../lib/watch/event.ts";

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

describe("escaping of names and peer text", () => {
  test("escapeText turns every control into a visible escape and leaves text alone", () => {
    expect(escapeText("org.qemu.guest_agent.0 é €")).toBe("org.qemu.guest_agent.0 é €");
    expect(escapeText("a\x1b[2J\x07b\nc\rd\te\x7f")).toBe("a\\x1b[2J\\x07b\\x0ac\\x0dd\\x09e\\x7f");
    expect(escapeText("\u0080\u009b\u009f")).toBe("\\x80\\x9b\\x9f");
    expect(escapeText("x\u2028y\u2029z\u202e\u2066")).toBe("x\\u2028y\\u2029z\\u202e\\u2066");
    expect(escapeText("m\u200e\u200f\u061c")).toBe("m\\u200e\\u200f\\u061c");
    // A lone surrogate is not text; a pair (an emoji) is.
    expect(escapeText("\ud800x\udc00 \ud83d\ude00")).toBe("\\ud800x\\udc00 \ud83d\ude00");
  });

  test("escapeLines keeps newlines, CRLF and tabs but nothing else", () => {
    expect(escapeLines("one\ntwo\r\n\tthree\rfour\x1b[m\u009b")).toBe("one\ntwo\r\n\tthree\\x0dfour\\x1b[m\\x9b");
  });

  test("safeJson escapes what JSON.stringify leaves raw, and parses back to the same value", () => {
    const value = { name: "a\u009b\u0085\x7f\u2028\u202eb\x1b\n", n: 1 };
    const text = safeJson(value, 2);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/);
    expect(text).toContain("\\u009b");
    expect(JSON.parse(text)).toEqual(value);
  });

  test("an error message is one escaped line, its hint too", () => {
    const { text, code } = formatError(new VmchanError('no port named "x\x1b[31m\nvmchan: forged"', { code: 3, hint: "try \u009b" }));
    expect(code).toBe(3);
    expect(text).toBe('vmchan: no port named "x\\x1b[31m\\x0avmchan: forged" (hint: try \\x9b)\n');
  });

  test("writeJson writes exactly what safeJson(value, 2) does, chunk by chunk", () => {
    const value = {
      guest: [],
      host: { vms: [{ name: "v\u009b", pid: 1, ports: [{ a: null, b: "x\n", c: [1, { d: true }] }, { e: undefined, f: 2 }], empty: {} }], notes: [] },
      z: [null, "s"],
    };
    let text = "";
    const out = new ChunkedWriter((t) => (text += t));
    writeJson(value, out);
    out.flush();
    expect(text).toBe(safeJson(value, 2));
  });

  test("a table cell is escaped, then capped with an ellipsis without splitting a surrogate pair", () => {
    expect(tableCell("a\nb")).toBe("a\\x0ab");
    expect(tableCell("x".repeat(200))).toBe("x".repeat(79) + "…");
    const cell = tableCell("y".repeat(78) + "\ud83d\ude00zzz");
    expect(cell).toBe("y".repeat(78) + "…");
  });

  test("a message listing 15,000 port names is printed as one line of bounded length", () => {
    const names = Array.from({ length: 15_000 }, (_, i) => `"org.p${i}\x1b"`).join(", ");
    const { text } = formatError(new VmchanError(`no port named "x" in VM "vm1": it has ${names}`, { code: 3 }));
    expect(text.split("\n").length, `what I saw: ${text.slice(0, 200)}`).toBe(2);
    expect(text.length).toBeLessThan(MAX_MESSAGE + 100);
    expect(text).toMatch(/^vmchan: no port named "x" in VM "vm1": it has "org\.p0\\x1b", .*… \(\d+ more characters\)\n$/);
    expect(clipText("short\x07")).toBe("short\\x07");
  });

  test("watch lines: a hostile VM or port name is one escaped, bounded line, human or JSON", () => {
    const ev = {
      time: "2026-01-01T00:00:00.000Z", side: "host", event: "port-added", vm: "v\x1b[2J\n12:00:00.000  vm-stopped  x", pid: 1,
      port: "p\u009b\u2028" + "q".repeat(100_000), id: "i\x07", path: "/s\r.sock", via: "qmp-poll",
    } as const;
    const human = formatHumanLine(ev);
    expect(human.split("\n").length, `what I saw: ${human.slice(0, 300)}`).toBe(2);
    expect(human).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(human.length).toBeLessThan(1500);
    expect(human).toContain("v\\x1b[2J\\x0a12:00:00.000");
    const json = formatJsonLine(ev);
    expect(json.split("\n").length).toBe(2);
    expect(json).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(JSON.parse(json)).toEqual(ev);
  });
});
