import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { VMCHAN, vmchan } from "../support/binary.ts";

const root = new URL("../../", import.meta.url).pathname;

describe("shell completions", () => {
  for (const [shell, file] of [["bash", "vmchan.bash"], ["zsh", "_vmchan"], ["fish", "vmchan.fish"]] as const) {
    test(`completions/${file} is what 'vmchan completions ${shell}' prints (regenerate: npm run completions)`, async () => {
      const r = await vmchan(["completions", shell]);
      expect(r.code).toBe(0);
      expect(r.stdout.toString()).toBe(readFileSync(`${root}completions/${file}`, "utf8"));
    });
  }

  test("an unknown shell is a usage error", async () => {
    const r = await vmchan(["completions", "tcsh"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("value 'tcsh' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish.");
  });

  test("the bash script completes subcommands and options by calling the binary", async () => {
    const complete = async (...words: string[]) => {
      const script = [
        // bash-completion's helper, reduced to what the script uses
        '_get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }',
        `source ${root}completions/vmchan.bash`,
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}`,
        "__vmchan_complete",
        'printf "%s\\n" "${COMPREPLY[@]}"',
      ].join("\n");
      const p = Bun.spawnSync(["bash", "-c", script], { env: { PATH: `${dirname(VMCHAN)}:/usr/bin:/bin` }, stdout: "pipe", stderr: "pipe" });
      return p.stdout.toString().trim().split("\n");
    };
    expect(await complete("vmchan", "ca")).toEqual(["cat"]);
    expect(await complete("vmchan", "ports", "l")).toEqual(["list"]);
    expect(await complete("vmchan", "cat", "--fo")).toEqual(["--follow"]);
    expect(await complete("vmchan", "completions", "")).toEqual(["bash", "zsh", "fish"]);
  });
});
