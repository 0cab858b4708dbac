import { describe, expect, test } from "bun:test";
import { closingQuote, quoteForBash, splitShellWords } from "../../lib/shell-words.ts";

describe("splitting a command line without expanding it", () => {
  test("quotes and backslashes are removed, $(...), backquotes, globs and variables stay as typed", () => {
    const words = splitShellWords(`vmchan cat 'a b' "c \\"d\\" \\$x" e\\ f $'g\\nh' $(touch /tmp/x) \`id\` * ~ $HOME `);
    expect(words.map((w) => w.value), `what I saw: ${JSON.stringify(words)}`).toEqual([
      "vmchan",
      "cat",
      "a b",
      'c "d" $x',
      "e f",
      "g\nh",
      "$(touch /tmp/x)",
      "`id`",
      "*",
      "~",
      "$HOME",
      "",
    ]);
  });

  test("a separator starts a new command: only the last command's words are returned", () => {
    expect(splitShellWords("echo x; vmchan cat a && vmchan ports l").map((w) => w.value)).toEqual(["vmchan", "ports", "l"]);
    expect(splitShellWords("vmchan cat x | vmchan send ").map((w) => w.value)).toEqual(["vmchan", "send", ""]);
    expect(splitShellWords("vmchan cat --vm $(a; b) `c; d` ${e;f} x").map((w) => w.value)).toEqual(["vmchan", "cat", "--vm", "$(a; b)", "`c; d`", "${e;f}", "x"]);
  });

  test("the last word tells the quoting open at the cursor", () => {
    expect(splitShellWords("vmchan cat 'lab:it").at(-1)).toEqual({ raw: "'lab:it", value: "lab:it", state: "single" });
    expect(splitShellWords('vmchan cat "lab:s').at(-1)).toEqual({ raw: '"lab:s', value: "lab:s", state: "double" });
    expect(splitShellWords("vmchan cat $'lab:s").at(-1)).toEqual({ raw: "$'lab:s", value: "lab:s", state: "ansi" });
    expect(splitShellWords("vmchan cat lab:a\\").at(-1)).toEqual({ raw: "lab:a\\", value: "lab:a", state: "none", escapePending: true });
  });
});

describe("quoting for bash", () => {
  const hostile = ["$(touch /tmp/p)", "`id`", ";id", "*", "?[ab]", "a b  c", "it's", 'say"hi"', "back\\slash", "$HOME", "!!", "a|b&c>d<e", "{x,y}", "~root", "#x", "x'", "'", '"', "\\", "é ü", "-rf"];

  test("a word bash would expand as typed is flagged: unquoted or double-quoted $ and backquotes, not single-quoted or escaped ones", () => {
    const last = (line: string) => splitShellWords(line).at(-1)!;
    for (const typed of ['vmchan cat "$', 'vmchan cat "lab:$(', "vmchan cat lab:$", 'vmchan cat lab:"$', 'vmchan cat --vm="$', "vmchan cat `x", 'vmchan cat "`', "vmchan cat ${x:-'}"])
      expect(last(typed).expands, typed).toBe(true);
    for (const typed of ["vmchan cat '$", "vmchan cat \\$", 'vmchan cat "\\$', "vmchan cat $'x", "vmchan cat lab:x"])
      expect(last(typed).expands, typed).toBeUndefined();
  });

  test("outside quotes: every character bash treats specially gets a backslash", () => {
    expect(quoteForBash("lab:$(touch /tmp/p)")).toBe("lab:\\$\\(touch\\ /tmp/p\\)");
    expect(quoteForBash("ok.port-1,x@z")).toBe("ok.port-1,x@z");
    // "=" would make a leading NAME=... an assignment under `set -k`, "%" is a history character in some setups.
    expect(quoteForBash("LD_PRELOAD=/tmp/x.so%")).toBe("LD_PRELOAD\\=/tmp/x.so\\%");
    expect(quoteForBash("~root")).toBe("\\~root");
  });

  for (const state of ["none", "single", "double", "ansi"] as const) {
    test(`appended inside ${state} quoting and closed, each name reads back as itself`, () => {
      const open = { none: "", single: "'", double: '"', ansi: "$'" }[state];
      for (const name of hostile) {
        const text = `pre${open}${quoteForBash(name, state)}${closingQuote(state)}`;
        const words = splitShellWords(`vmchan cat ${text} `);
        expect(words.map((w) => w.value), `${state}: ${JSON.stringify(name)} was written ${JSON.stringify(text)}`).toEqual(["vmchan", "cat", `pre${name}`, ""]);
      }
    });
  }

  test("after a pending backslash the first character is left for it, or the text refused when it would change", () => {
    expect(quoteForBash(" b", "none", true)).toBe(" b");
    expect(quoteForBash('"x', "double", true)).toBe('"x');
    expect(quoteForBash("ax", "double", true)).toBeNull();
  });
});
