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
    const out = completeWords(commandSpec(program as never), ["cat", "org.example.l"], liveCandidates(fx.root));
    expect(out).toBe("org.example.log.0\tunknown /dev/vport0p1\n:4\n");
    const all = completeWords(commandSpec(program as never), ["cat", ""], liveCandidates(fx.root));
    expect(all.split("\n").map((l) => l.split("\t")[0])).toEqual(["org.example.log.0", "org.example.cmd.0", ":4", ""]);
  });
});
