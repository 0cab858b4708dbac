import { afterEach, describe, expect, test } from "bun:test";
import { commandSpec } from "../../cli/completions.ts";
import { completeWords, liveCandidates } from "../../lib/completions.ts";
import { FixtureRoot } from "../support/fixture.ts";

let fx: FixtureRoot | undefined;
afterEach(() => fx?.dispose());

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
    const { Command } = await import("@commander-js/extra-typings");
    const { catCommand } = await import("../../cli/cat.ts");
    const program = new Command("vmchan");
    program.addCommand(catCommand() as never);
    const spec = commandSpec(program as never);
    const candidates = await liveCandidates(fx.root);
    expect(completeWords(spec, ["cat", "we"], candidates)).toBe("web:org.qemu.guest_agent.0\tserial /run/w.sock\n:4\n");
    expect(completeWords(spec, ["cat", "--vm", ""], candidates)).toBe("web\tQEMU pid 77\n:4\n");
  });

  test("names that are not one plain word (controls, newlines, spaces, C1, separators) are not offered; descriptions are escaped", async () => {
    fx = new FixtureRoot()
      .port("vport0p1", "ok.port")
      .port("vport0p2", "bad\nforged\tline")
      .port("vport0p3", "esc\x1b[31m")
      .port("vport0p4", "c1\u009b")
      .port("vport0p5", "two words")
      .port("vport0p6", "sep\u2028x")
      .file("/proc/77/cmdline", ["qemu-system-x86_64", "-name", "vm\x07", "-chardev", "socket,id=c,path=/run/\x1b]0;t\x07.sock,server=on", "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=c,name=org.a"].join("\0") + "\0")
      .file("/proc/78/cmdline", ["qemu-system-x86_64", "-name", "web", "-chardev", "socket,id=c,path=/run/\x1b]0;t\x07.sock,server=on", "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=c,name=org.b"].join("\0") + "\0");
    const { Command } = await import("@commander-js/extra-typings");
    const { catCommand } = await import("../../cli/cat.ts");
    const program = new Command("vmchan");
    program.addCommand(catCommand() as never);
    const spec = commandSpec(program as never);
    const candidates = await liveCandidates(fx.root);
    const all = completeWords(spec, ["cat", ""], candidates);
    expect(all, `what I saw: ${JSON.stringify(all)}`).toBe("ok.port\tunknown /dev/vport0p1\nweb:org.b\tserial /run/\\x1b]0;t\\x07.sock\n:4\n");
    expect(completeWords(spec, ["cat", "--vm", ""], candidates)).toBe("web\tQEMU pid 78\n:4\n");
  });
});
