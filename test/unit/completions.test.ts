import { afterEach, describe, expect, test } from "bun:test";
import { commandSpec } from "../../cli/completions.ts";
import { completeForBash, completeWords, isOfferable, liveCandidates, MAX_CANDIDATES, printableDescription } from "../../lib/completions.ts";
import { FixtureRoot } from "../support/fixture.ts";

let fx: FixtureRoot | undefined;
afterEach(() => fx?.dispose());

/** The completion spec of a program with only the cat command. */
async function catSpec(): Promise<ReturnType<typeof commandSpec>> {
  const { Command } = await import("@commander-js/extra-typings");
  const { catCommand } = await import("../../cli/cat.ts");
  const program = new Command("vmchan");
  program.addCommand(catCommand() as never);
  return commandSpec(program as never);
}

describe("dynamic completion values", () => {
  test("port arguments complete to this guest's port names", async () => {
    fx = new FixtureRoot().port("vport0p1", "org.example.log.0").port("vport0p2", "org.example.cmd.0");
    // cli/main.ts runs the program on import; build the tree from the command modules instead
    const { Command } = await import("@commander-js/extra-typings");
    const { catCommand } = await import("../../cli/cat.ts");
    const program = new Command("vmchan");
    program.addCommand(catCommand() as never);
    const out = completeWords(commandSpec(program as never), ["cat", "org.example.l"], await liveCandidates(fx.root));
    expect(out).toBe("org.example.log.0\tunknown /dev/vport0p1\n:4\n");
    const all = completeWords(commandSpec(program as never), ["cat", ""], await liveCandidates(fx.root));
    expect(all.split("\n").map((l) => l.split("\t")[0])).toEqual(["org.example.log.0", "org.example.cmd.0", ":4", ""]);
  });

  test("on a host, port arguments complete to VM:NAME and --vm to VM names", async () => {
    fx = new FixtureRoot()
      .file("/proc/77/cmdline", ["qemu-system-x86_64", "-name", "web", "-chardev", "socket,id=c,path=/run/w.sock,server=on", "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=c,name=org.qemu.guest_agent.0"].join("\0") + "\0")
      .dir("/proc/77/fd");
    const spec = await catSpec();
    const candidates = await liveCandidates(fx.root);
    expect(completeWords(spec, ["cat", "we"], candidates)).toBe("web:org.qemu.guest_agent.0\tserial /run/w.sock\n:4\n");
    expect(completeWords(spec, ["cat", "--vm", ""], candidates)).toBe("web\tQEMU pid 77\n:4\n");
  });

  test("names with controls, newlines, C1 or separators are not offered (a space is: the shells quote it); descriptions are made printable", async () => {
    fx = new FixtureRoot()
      .port("vport0p1", "ok.port")
      .port("vport0p2", "bad\nforged\tline")
      .port("vport0p3", "esc\x1b[31m")
      .port("vport0p4", "c1\u009b")
      .port("vport0p5", "two words")
      .port("vport0p6", "sep\u2028x")
      .file("/proc/77/cmdline", ["qemu-system-x86_64", "-name", "vm\x07", "-chardev", "socket,id=c,path=/run/\x1b]0;t\x07.sock,server=on", "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=c,name=org.a"].join("\0") + "\0")
      .file("/proc/78/cmdline", ["qemu-system-x86_64", "-name", "web", "-chardev", "socket,id=c,path=/run/\x1b]0;t\x07.sock,server=on", "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=c,name=org.b"].join("\0") + "\0");
    const spec = await catSpec();
    const candidates = await liveCandidates(fx.root);
    const all = completeWords(spec, ["cat", ""], candidates);
    expect(all, `what I saw: ${JSON.stringify(all)}`).toBe("ok.port\tunknown /dev/vport0p1\ntwo words\tunknown /dev/vport0p5\nweb:org.b\tserial /run/?]0;t?.sock\n:4\n");
    expect(completeWords(spec, ["cat", "--vm", ""], candidates)).toBe("web\tQEMU pid 78\n:4\n");
  });
});

describe("names that cannot be offered as they are", () => {
  const spec = catSpec;

  test("a name with a newline forges no candidate; control, escape and bidi characters leave a name out", async () => {
    const names = ["good", "real\ngood.forged", "esc\x1b[2J", "tab\tx", "del\x7f", "c1\u009b1m", "rlo\u202egnp", "zw\u200bj", "ls\u2028x", "bad\uFFFDutf8"];
    const out = completeWords(await spec(), ["cat", ""], () => names.map((value) => ({ value, description: "d" })));
    expect(out, `what I saw: ${JSON.stringify(out)}`).toBe("good\td\n:4\n");
    for (const n of names.slice(1)) expect(isOfferable(n), JSON.stringify(n)).toBe(false);
    expect(isOfferable("x".repeat(5000))).toBe(false);
  });

  test("descriptions are made printable and kept to one bounded line", async () => {
    const out = completeWords(await spec(), ["cat", ""], () => [{ value: "p", description: "path /run/\x1b]0;owned\x07\nsecond line\tx" }]);
    expect(out, `what I saw: ${JSON.stringify(out)}`).toBe("p\tpath /run/?]0;owned??second line?x\n:4\n");
    expect(printableDescription("y".repeat(1000)).length).toBeLessThanOrEqual(200);
  });

  test("a name from this machine that starts with '-' is left out: accepted, it would be an option", async () => {
    const names = ["-rf", "--exec=sh", "ok", ":4", ":colon"];
    const out = completeWords(await spec(), ["cat", ""], () => names.map((value) => ({ value, description: "" })));
    expect(out, `what I saw: ${JSON.stringify(out)}`).toBe("ok\t\n:4\t\n:colon\t\n:4\n");
    const bash = completeForBash(await spec(), { word: "", words: ["cat", ""] }, () => names.map((value) => ({ value, description: "" })));
    expect(bash, `what I saw: ${JSON.stringify(bash)}`).toBe("ok\n:4\n:colon\n:4\n");
    // The command's own options still complete.
    expect(completeWords(await spec(), ["cat", "--fo"], () => [])).toStartWith("--follow\t");
  });

  test("a flood of names is cut at MAX_CANDIDATES", async () => {
    const out = completeWords(await spec(), ["cat", ""], () => Array.from({ length: 50_000 }, (_, i) => ({ value: `p${i}`, description: "" })));
    expect(out.split("\n").length - 2, "candidate lines").toBe(MAX_CANDIDATES);
  });

  test("a typed word with a newline is not split into two by the engine", async () => {
    const out = completeWords(await spec(), ["cat", "x\ncat"], () => [{ value: "x", description: "" }]);
    expect(out, `what I saw: ${JSON.stringify(out)}`).toBe(":4\n");
  });
});

describe("answers for the bash script", () => {
  const spec = catSpec;
  const ports = () => ["web:$(id)", "web:a b", "web:it's", "db:x"].map((value) => ({ value, description: "" }));

  test("the whole word is replaced by the name quoted from scratch", async () => {
    expect(completeForBash(await spec(), { word: "w", words: ["cat", "w"] }, ports)).toBe("web:\\$\\(id\\)\nweb:a\\ b\nweb:it\\'s\n:4\n");
    // A typed "*" or "~" is not kept: the reply is the name, not what the shell would make of the typing.
    expect(completeForBash(await spec(), { word: "*", words: ["cat", "*"] }, () => [{ value: "*x", description: "" }])).toBe("\\*x\n:4\n");
  });

  test("after a word break (the colon) only the text readline replaces is answered", async () => {
    expect(completeForBash(await spec(), { word: "", line: "vmchan cat web:" }, ports)).toBe("\\$\\(id\\)\na\\ b\nit\\'s\n:4\n");
    expect(completeForBash(await spec(), { word: "a\\", line: "vmchan cat web:a\\" }, ports)).toBe("a\\ b\n:4\n");
  });

  test("inside an open quote the reply continues it and closes it", async () => {
    expect(completeForBash(await spec(), { word: "web:i", line: "vmchan cat 'web:i" }, ports)).toBe("web:it'\\''s'\n:4\n");
    expect(completeForBash(await spec(), { word: "web:", line: 'vmchan cat "web:' }, ports)).toBe('web:\\$(id)"\nweb:a b"\nweb:it\'s"\n:4\n');
  });

  test("an option's value after '=' is answered without the option", async () => {
    const vms = () => [{ value: "w b", description: "" }];
    expect(completeForBash(await spec(), { word: "w", line: "vmchan cat --vm=w" }, vms)).toBe("w\\ b\n:4\n");
  });
});
