import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ExitCode } from "../../lib/exit-codes.ts";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README", () => {
  test("the exit code table lists every code vmchan uses, and no other", () => {
    const section = readme.slice(readme.indexOf("## Exit codes"), readme.indexOf("\n## ", readme.indexOf("## Exit codes") + 1));
    const documented = [...section.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
    const used = [...new Set(Object.values(ExitCode))].sort((a, b) => a - b);
    expect(documented, `README documents ${documented.join(", ")}; lib/exit-codes.ts has ${used.join(", ")}`).toEqual(used);
  });

  test("has a Security section naming each party of the threat model", () => {
    const start = readme.indexOf("## Security");
    expect(start, "no '## Security' heading").toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
    for (const words of ["hostile", "other local users", "Not guaranteed"]) expect(section).toContain(words);
  });
});
