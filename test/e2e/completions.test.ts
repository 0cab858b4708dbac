import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ensurePackages } from "../lab/host-deps.ts";
import { VMCHAN, vmchan } from "../support/binary.ts";
import { FixtureRoot } from "../support/fixture.ts";
import { PtySession } from "../support/pty.ts";
import { closingQuote, quoteForBash } from "../../lib/shell-words.ts";

const root = new URL("../../", import.meta.url).pathname;
const repo = root;

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

// ---------------------------------------------------------------------------------------------------------
// Hostile names: port and VM names are chosen by other people (a host names a guest's ports, any local user
// can start a process that looks like QEMU). Completion must offer them only quoted, never evaluate them or
// the command line, and leave out the ones a shell or terminal cannot show as they are.

const SHELL_PACKAGES = ["zsh", "fish", "bsdutils"] as const;
const markers = mkdtempSync(join(tmpdir(), "vmchan-compl-markers-"));
// An unquoted glob would match these, an unquoted $HOME would expand to /nonexistent-home.
const globDir = mkdtempSync(join(tmpdir(), "vmchan-compl-cwd-"));
for (const f of ["xa", "globbed"]) writeFileSync(join(globDir, f), "");
afterAll(() => {
  rmSync(markers, { recursive: true, force: true });
  rmSync(globDir, { recursive: true, force: true });
});

/** Names a shell must take literally; each runs `touch` on a marker if anything evaluates it. */
const OFFERED = [
  `$(touch ${markers}/pwned-1)`,
  `\`touch ${markers}/pwned-2\``,
  `;touch ${markers}/pwned-3`,
  "*",
  "?[ab]",
  "a b  c",
  "it's",
  'say"hi"',
  "back\\slash",
  "$HOME",
  "!!",
  "a|b&c>d<e",
  "{x,y}",
  "~root",
  "#hash",
  "x'",
  "ok.port-1",
];
/** Names no shell is offered: newlines would forge candidates, the others drive the terminal or hide text. */
const DROPPED = [
  `nl\n$(touch ${markers}/pwned-nl)`,
  "real\nlab:forged",
  "esc\x1b]0;title\x07",
  "csi\x1b[2J",
  "tab\there",
  "del\x7f",
  "cr\rx",
  "c1\u009b31m",
  "bidi\u202egnp.exe",
];
/** Names that would be read as options if offered alone (`--exec=...` runs a program); as `VM:NAME` they are plain. */
const OPTION_LIKE = ["-rf", `--exec=touch ${markers}/pwned-opt`];
const EVIL_VM = `&$(touch ${markers}/pwned-vm)`;
const AGENT = "org.qemu.guest_agent.0";

/** A QEMU command line (as /proc shows it, NUL-separated) with one virtserialport per name. */
function qemuCmdline(vmName: string, names: string[], argv0 = "qemu-system-x86_64"): string[] {
  const argv = [argv0, "-name", vmName.replaceAll(",", ",,"), "-device", "virtio-serial-pci"];
  names.forEach((n, i) => {
    argv.push("-chardev", `socket,id=c${i},path=/run/vmchan-test-c${i}.sock,server=on`);
    argv.push("-device", `virtserialport,chardev=c${i},name=${n.replaceAll(",", ",,")}`);
  });
  return argv;
}

/** A fixture with the hostile names as this guest's ports and as the ports of a VM "lab", plus a VM with a hostile name. */
function hostileFixture(): FixtureRoot {
  const fx = new FixtureRoot();
  [...OFFERED, ...OPTION_LIKE, ...DROPPED].forEach((n, i) => fx.port(`vport0p${i + 1}`, n, { link: false }));
  fx.file("/proc/77/cmdline", qemuCmdline("lab", [...OFFERED, ...OPTION_LIKE, ...DROPPED]).join("\0") + "\0").dir("/proc/77/fd");
  fx.file("/proc/80/cmdline", qemuCmdline("-vm-like-an-option", [AGENT]).join("\0") + "\0").dir("/proc/80/fd");
  fx.file("/proc/78/cmdline", qemuCmdline(EVIL_VM, [AGENT]).join("\0") + "\0").dir("/proc/78/fd");
  fx.file("/proc/79/cmdline", qemuCmdline("vm\x1b[2Jcleared", [AGENT]).join("\0") + "\0").dir("/proc/79/fd");
  return fx;
}

/** Everything `vmchan cat <TAB>` may offer with that fixture. */
const LAB_PORTS = [...OFFERED, ...OPTION_LIKE].map((n) => `lab:${n}`);
const ALL_PORTS = [...OFFERED, ...LAB_PORTS, `${EVIL_VM}:${AGENT}`];

/** The marker files something created (none, or a shell ran a name). */
const pwned = () => readdirSync(markers);

const shellEnv = (root: string | null): Record<string, string> => ({
  PATH: `${dirname(VMCHAN)}:/usr/bin:/bin`,
  HOME: "/nonexistent-home",
  ...(root === null ? {} : { VMCHAN_COMPLETE_ROOT: root }),
});

/** Runs a shell script (no rc files) and returns its stdout split at NULs. */
function runShell(argv: string[], env: Record<string, string>): { fields: string[]; stdout: string; stderr: string; code: number | null } {
  const p = Bun.spawnSync(argv, { env, cwd: globDir, stdout: "pipe", stderr: "pipe" });
  const stdout = p.stdout.toString();
  return { fields: stdout.split("\0").slice(0, -1), stdout, stderr: p.stderr.toString(), code: p.exitCode };
}

/** What bash makes of each reply as typed on a command line (one field each, or the reply failed). */
function bashReads(replies: string[]): string[][] {
  const script = replies.map((r) => `set -- ${r}\nprintf '%s\\0' "$#" "$@"`).join("\n");
  const { fields, stderr } = runShell(["bash", "--norc", "--noprofile", "-c", script], shellEnv(null));
  const out: string[][] = [];
  for (let i = 0; i < fields.length; ) {
    const n = Number(fields[i]);
    out.push(fields.slice(i + 1, i + 1 + n));
    i += 1 + n;
  }
  expect(out.length, `bash read ${fields.length} fields for ${replies.length} replies; stderr: ${stderr}`).toBe(replies.length);
  return out;
}

/** Calls the bash script's function the way bash does, with COMP_WORDS (and COMP_LINE when given); returns COMPREPLY. */
function bashComplete(root: string | null, words: string[], opts: { line?: string; rlWord?: string } = {}): string[] {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const script = [
    `source ${q(`${repo}completions/vmchan.bash`)}`,
    `COMP_WORDS=(${words.map(q).join(" ")}); COMP_CWORD=${words.length - 1}`,
    ...(opts.line === undefined ? [] : [`COMP_LINE=${q(opts.line)}; COMP_POINT=\${#COMP_LINE}`]),
    opts.rlWord === undefined ? "__vmchan_complete" : `__vmchan_complete vmchan ${q(opts.rlWord)} ${q(words[words.length - 2] ?? "")}`,
    `printf '%s\\0' "\${COMPREPLY[@]}"`,
  ].join("\n");
  const r = runShell(["bash", "--norc", "--noprofile", "-c", script], shellEnv(root));
  expect(r.code, `bash failed: ${r.stderr}`).toBe(0);
  return r.fields;
}

const sorted = (xs: string[]) => [...xs].sort();

describe("completion of hostile names", () => {
  beforeAll(() => ensurePackages(SHELL_PACKAGES), 900_000);

  test("vmchan complete offers names with shell metacharacters as they are and leaves out names with control characters", async () => {
    const fx = hostileFixture();
    try {
      const r = await vmchan(["complete", "--", "cat", ""], { env: { VMCHAN_COMPLETE_ROOT: fx.root } });
      const out = r.stdout.toString();
      expect(r.code, `stderr: ${r.stderr}`).toBe(0);
      const lines = out.split("\n");
      expect(lines.at(-1), `what I saw: ${JSON.stringify(out)}`).toBe("");
      expect(lines.at(-2)).toBe(":4");
      for (const l of lines.slice(0, -2)) expect(l, `a line with a control character other than one tab: ${JSON.stringify(l)}`).toMatch(/^[^\p{Cc}\p{Cf}]+\t[^\p{Cc}\p{Cf}]*$/u);
      expect(sorted(lines.slice(0, -2).map((l) => l.split("\t")[0]!)), `what I saw: ${JSON.stringify(out)}`).toEqual(sorted(ALL_PORTS));
      const vms = await vmchan(["complete", "--", "cat", "--vm", ""], { env: { VMCHAN_COMPLETE_ROOT: fx.root } });
      expect(vms.stdout.toString(), `what I saw: ${JSON.stringify(vms.stdout.toString())}`).toBe(`${EVIL_VM}\tQEMU pid 78\nlab\tQEMU pid 77\n:4\n`);
      const byOption = await vmchan(["complete", "--root", fx.root, "--", "cat", "--vm", ""]);
      expect(byOption.stdout.toString(), "--root instead of VMCHAN_COMPLETE_ROOT").toBe(vms.stdout.toString());
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("bash: COMPREPLY holds every offered name quoted, and bash reads each back as that one literal word", () => {
    const fx = hostileFixture();
    try {
      const replies = bashComplete(fx.root, ["vmchan", "cat", ""]);
      expect(pwned(), "the completion ran a name").toEqual([]);
      const read = bashReads(replies);
      expect(pwned(), `a reply ran a name; replies: ${JSON.stringify(replies)}`).toEqual([]);
      expect(read.every((w) => w.length === 1), `replies that bash split or dropped: ${JSON.stringify(replies.filter((_, i) => read[i]!.length !== 1))}`).toBe(true);
      expect(sorted(read.map((w) => w[0]!)), `replies: ${JSON.stringify(replies)}`).toEqual(sorted(ALL_PORTS));

      const vms = bashComplete(fx.root, ["vmchan", "cat", "--vm", ""]);
      expect(bashReads(vms), `replies: ${JSON.stringify(vms)}`).toEqual([[EVIL_VM], ["lab"]]);
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("bash: after 'VM:' (a word break) the replies continue the word, quoted, as bash passes it", () => {
    const fx = hostileFixture();
    try {
      // bash splits "lab:" at the colon; readline replaces only the text after it.
      const replies = bashComplete(fx.root, ["vmchan", "cat", "lab", ":", ""], { line: "vmchan cat lab:", rlWord: "" });
      const read = bashReads(replies.map((r) => `lab:${r}`));
      expect(pwned(), `replies: ${JSON.stringify(replies)}`).toEqual([]);
      expect(sorted(read.map((w) => w.join("|"))), `replies: ${JSON.stringify(replies)}`).toEqual(sorted(LAB_PORTS));

      // Inside an open quote the reply continues that quote and closes it.
      const quoted = bashComplete(fx.root, ["vmchan", "cat", "'lab:it"], { line: "vmchan cat 'lab:it", rlWord: "lab:it" });
      expect(quoted, "what I saw").toEqual(["lab:it'\\''s'"]);
      expect(bashReads(quoted.map((r) => `'${r}`))).toEqual([["lab:it's"]]);
      const dquoted = bashComplete(fx.root, ["vmchan", "cat", '"lab:s'], { line: 'vmchan cat "lab:s', rlWord: "lab:s" });
      expect(bashReads(dquoted.map((r) => `"${r}`)), `replies: ${JSON.stringify(dquoted)}`).toEqual([['lab:say"hi"']]);
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("bash: a command line with $(...), backquotes and ; before the cursor is read, never run", () => {
    const fx = hostileFixture();
    try {
      const line = `vmchan cat $(touch ${markers}/pwned-line) \`touch ${markers}/pwned-line2\` ; vmchan cat --vm "$(touch ${markers}/pwned-line3)" lab:ok`;
      const replies = bashComplete(fx.root, ["vmchan", "cat", "--vm", `"$(touch ${markers}/pwned-line3)"`, "lab", ":", "ok"], { line, rlWord: "ok" });
      expect(replies, "what I saw").toEqual(["ok.port-1"]);
      const fallback = bashComplete(fx.root, ["vmchan", "cat", "--vm", `$(touch ${markers}/pwned-words)`, "lab:ok"]);
      expect(fallback, "what I saw").toEqual(["lab:ok.port-1"]);
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("bash: a word the user left expanding (\"$, \"lab:$(, --vm=\"$, `) gets no replies, so no name can complete it into a command", () => {
    const fx = hostileFixture();
    try {
      const cases: { line: string; words: string[]; rlWord: string }[] = [
        { line: 'vmchan cat "$', words: ["vmchan", "cat", '"$'], rlWord: '"$' },
        { line: 'vmchan cat "lab:$(', words: ["vmchan", "cat", '"lab', ":", "$("], rlWord: "$(" },
        { line: 'vmchan cat lab:"$', words: ["vmchan", "cat", "lab", ":", '"$'], rlWord: '"$' },
        { line: 'vmchan cat --vm="$', words: ["vmchan", "cat", "--vm", "=", '"$'], rlWord: '"$' },
        { line: 'vmchan cat --vm "$', words: ["vmchan", "cat", "--vm", '"$'], rlWord: '"$' },
        { line: "vmchan cat `", words: ["vmchan", "cat", "`"], rlWord: "`" },
        { line: "vmchan cat lab:$", words: ["vmchan", "cat", "lab", ":", "$"], rlWord: "$" },
      ];
      // (printf of an empty COMPREPLY still writes one empty field)
      for (const c of cases) expect(bashComplete(fx.root, c.words, { line: c.line, rlWord: c.rlWord }).filter((r) => r !== ""), `replies for ${c.line}`).toEqual([]);
      // The same names are offered once the word is quoted so that bash expands nothing.
      expect(bashComplete(fx.root, ["vmchan", "cat", "'$"], { line: "vmchan cat '$", rlWord: "'$" }).length).toBeGreaterThan(0);
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("zsh: the script hands compadd exactly the offered names, unquoted for compadd to quote, with printable descriptions", () => {
    const fx = hostileFixture();
    try {
      const capture = (current: string[], prefix: string) => {
        const words = ["vmchan", ...current];
        const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
        const script = [
          `source ${q(`${repo}completions/_vmchan`)}`,
          // compadd only works inside a completion widget; this one records what it was given.
          `compadd() { local -a v d; v=("\${(@P)\${@[-1]}}"); d=("\${(@P)\${@[3]}}"); printf '%s\\0' "\${#v}" "\${v[@]}" "\${d[@]}"; }`,
          `words=(${words.map(q).join(" ")}); CURRENT=${words.length + 1}; PREFIX=${q(prefix)}`,
          "_vmchan",
        ].join("\n");
        const r = runShell(["zsh", "-f", "-c", script], shellEnv(fx.root));
        expect(r.code, `zsh failed: ${r.stderr} ${JSON.stringify(r.stdout.slice(0, 300))}`).toBe(0);
        const n = Number(r.fields[0]);
        return { values: r.fields.slice(1, 1 + n), shown: r.fields.slice(1 + n) };
      };
      const all = capture(["cat"], "");
      expect(sorted(all.values), `what I saw: ${JSON.stringify(all)}`).toEqual(sorted(ALL_PORTS));
      for (const s of all.shown) expect(s, "a description with a control character").not.toMatch(/[\p{Cc}\p{Cf}]/u);
      expect(capture(["cat", "--vm"], "").values).toEqual([EVIL_VM, "lab"]);
      // The typed prefix is unquoted the way zsh does, not evaluated (inside an open quote zsh leaves the quote out of PREFIX).
      expect(capture(["cat"], "lab:it").values).toEqual(["lab:it's"]);
      expect(capture(["cat"], `lab:\\$\\(`).values).toEqual([`lab:$(touch ${markers}/pwned-1)`]);
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("fish: complete -C offers exactly the offered names, for ports, VM:NAME and --vm", () => {
    const fx = hostileFixture();
    try {
      const ask = (line: string) => {
        const q = (s: string) => `'${s.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
        const r = runShell(["fish", "--no-config", "-c", `source ${q(`${repo}completions/vmchan.fish`)}; printf '%s\\0' (complete -C ${q(line)})`], shellEnv(fx.root));
        expect(r.code, `fish failed: ${r.stderr} ${JSON.stringify(r.stdout.slice(0, 300))}`).toBe(0);
        // printf with no candidates still prints one empty field; no candidate is empty.
        return r.fields.filter((f) => f !== "");
      };
      const all = ask("vmchan cat ");
      for (const c of all) expect(c, "a candidate with a control character other than the description's tab").toMatch(/^[^\p{Cc}\p{Cf}]+(\t[^\p{Cc}\p{Cf}]*)?$/u);
      expect(sorted(all.map((c) => c.split("\t")[0]!)), `what I saw: ${JSON.stringify(all)}`).toEqual(sorted(ALL_PORTS));
      expect(sorted(ask("vmchan cat lab:").map((c) => c.split("\t")[0]!))).toEqual(sorted(LAB_PORTS));
      expect(ask("vmchan cat --vm ").map((c) => c.split("\t")[0]!)).toEqual([EVIL_VM, "lab"]);
      expect(ask("vmchan cat --vm=l").map((c) => c.split("\t")[0]!)).toEqual(["--vm=lab"]);
      expect(ask("vmchan cat 'lab:it").map((c) => c.split("\t")[0]!)).toEqual(["lab:it's"]);
      // Earlier words are unquoted once, as fish does: '\x63at' is the word \x63at, not cat.
      expect(ask("vmchan 'c'at lab:o").map((c) => c.split("\t")[0]!)).toEqual(["lab:ok.port-1"]);
      const twice = ask("vmchan '\\x63at' lab:o");
      expect(twice, `a word unquoted twice: ${JSON.stringify(twice)}`).toEqual([]);
      expect(pwned()).toEqual([]);
    } finally {
      fx.dispose();
    }
  });

  test("a process that only looks like QEMU: its port names are offered quoted by bash, zsh and fish, never run", async () => {
    const vm = `fakevm-${process.pid}-${Date.now()}`;
    // argv[0] makes it look like QEMU in /proc; sh ignores the rest of its arguments and waits on stdin.
    const fake = Bun.spawn(["/bin/sh", "-c", "read x", ...qemuCmdline(vm, [...OFFERED, ...OPTION_LIKE, ...DROPPED]).slice(1)], {
      argv0: "qemu-system-x86_64",
      stdin: "pipe",
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      const expected = sorted([...OFFERED, ...OPTION_LIKE].map((n) => `${vm}:${n}`));
      // The process is visible once its cmdline is (it is read at every TAB; other VMs may run too).
      const seen = () => {
        try {
          return readFileSync(`/proc/${fake.pid}/cmdline`, "utf8").includes(vm);
        } catch {
          return false;
        }
      };
      for (let i = 0; !seen(); i++) {
        if (i > 3000) throw new Error(`/proc/${fake.pid}/cmdline never showed ${vm}`);
        await Bun.sleep(10);
      }
      const replies = bashComplete(null, ["vmchan", "cat", `${vm}:`]);
      expect(sorted(bashReads(replies).map((w) => w.join("|"))), `bash replies: ${JSON.stringify(replies)}`).toEqual(expected);
      const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
      const z = runShell(
        [
          "zsh",
          "-f",
          "-c",
          `source ${q(`${repo}completions/_vmchan`)}\ncompadd() { printf '%s\\0' "\${(@P)\${@[-1]}}"; }\nwords=(vmchan cat ''); CURRENT=3; PREFIX=${q(`${vm}:`)}\n_vmchan`,
        ],
        shellEnv(null),
      );
      expect(sorted(z.fields), `zsh: ${z.stderr}`).toEqual(expected);
      const f = runShell(["fish", "--no-config", "-c", `source ${q(`${repo}completions/vmchan.fish`)}; printf '%s\\0' (complete -C ${q(`vmchan cat ${vm}:`)})`], shellEnv(null));
      expect(sorted(f.fields.map((c) => c.split("\t")[0]!)), `fish: ${f.stderr}`).toEqual(expected);
      const vms = bashComplete(null, ["vmchan", "cat", "--vm", vm]);
      expect(vms).toEqual([vm]);
      expect(pwned()).toEqual([]);
    } finally {
      fake.kill("SIGKILL");
      await fake.exited;
    }
  });
});

/** What a user types after `vmchan cat ` before pressing TAB, and the one word the command must then receive. */
const TYPED: { typed: string; fish?: string; args: string[] }[] = [
  { typed: "lab:\\$\\(", args: ["cat", `lab:$(touch ${markers}/pwned-1)`] },
  { typed: "lab:\\`", args: ["cat", `lab:\`touch ${markers}/pwned-2\``] },
  { typed: "lab:\\;", args: ["cat", `lab:;touch ${markers}/pwned-3`] },
  { typed: "lab:\\*", args: ["cat", "lab:*"] },
  { typed: "lab:\\?", args: ["cat", "lab:?[ab]"] },
  { typed: "lab:a\\ ", args: ["cat", "lab:a b  c"] },
  { typed: "'lab:it", args: ["cat", "lab:it's"] },
  { typed: '"lab:say', args: ["cat", 'lab:say"hi"'] },
  { typed: "lab:back", args: ["cat", "lab:back\\slash"] },
  { typed: "lab:\\$H", args: ["cat", "lab:$HOME"] },
  { typed: "lab:\\!", fish: "lab:!", args: ["cat", "lab:!!"] },
  { typed: '"lab:!', args: ["cat", "lab:!!"] },
  { typed: "lab:a\\|", args: ["cat", "lab:a|b&c>d<e"] },
  { typed: "lab:\\{", args: ["cat", "lab:{x,y}"] },
  { typed: "lab:\\~", args: ["cat", "lab:~root"] },
  { typed: "lab:\\#", args: ["cat", "lab:#hash"] },
  { typed: "lab:x", args: ["cat", "lab:x'"] },
  { typed: "\\$\\(", args: ["cat", `$(touch ${markers}/pwned-1)`] },
  { typed: "\\&", args: ["cat", `${EVIL_VM}:${AGENT}`] },
  { typed: "\\~", args: ["cat", "~root"] },
  { typed: "\\#", args: ["cat", "#hash"] },
  { typed: "\\*", args: ["cat", "*"] },
  { typed: "lab:--", args: ["cat", `lab:--exec=touch ${markers}/pwned-opt`] },
  { typed: "--vm \\&", args: ["cat", "--vm", EVIL_VM] },
  { typed: "--vm=\\&", args: ["cat", `--vm=${EVIL_VM}`] },
];

/**
 * Types each TYPED line into an interactive shell in a terminal, with TAB then Enter, where `vmchan` is a
 * function that records its arguments (the completion still calls the binary: `command vmchan`).
 */
async function typeIntoShell(shell: "bash" | "zsh" | "fish", fx: FixtureRoot): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), `vmchan-compl-${shell}-`));
  const log = join(home, "args");
  writeFileSync(log, "");
  const script = `${repo}completions/${{ bash: "vmchan.bash", zsh: "_vmchan", fish: "vmchan.fish" }[shell]}`;
  let command: string;
  const env: Record<string, string> = { ...shellEnv(fx.root), HOME: home };
  if (shell === "bash") {
    writeFileSync(
      join(home, "rc"),
      `PS1='READY> '\nsource '${script}'\nvmchan() { printf '%s\\0' "$#" "$@" >> '${log}'; }\nbind 'set bell-style none'\n`,
    );
    command = `bash --noprofile --rcfile '${home}/rc' -i`;
  } else if (shell === "zsh") {
    mkdirSync(join(home, "fn"));
    writeFileSync(join(home, "fn", "_vmchan"), readFileSync(script));
    writeFileSync(
      join(home, ".zshrc"),
      `PS1='READY> '\nunsetopt beep\nfpath=('${home}/fn' $fpath)\nautoload -Uz compinit; compinit -u -D\nvmchan() { printf '%s\\0' "$#" "$@" >> '${log}'; }\n`,
    );
    env.ZDOTDIR = home;
    command = "zsh -i";
  } else {
    mkdirSync(join(home, "fish"), { recursive: true });
    writeFileSync(
      join(home, "fish", "config.fish"),
      `function fish_prompt; printf 'READY> '; end\nfunction fish_greeting; end\nsource '${script}'\nfunction vmchan; printf '%s\\0' (count $argv) $argv >> '${log}'; end\n`,
    );
    env.XDG_CONFIG_HOME = home;
    env.XDG_DATA_HOME = home;
    command = "fish -i";
  }
  const records = (): string[][] => {
    const fields = readFileSync(log, "utf8").split("\0").slice(0, -1);
    const out: string[][] = [];
    for (let i = 0; i < fields.length; ) {
      const n = Number(fields[i]);
      out.push(fields.slice(i + 1, i + 1 + n));
      i += 1 + n;
    }
    return out;
  };
  const pty = new PtySession(command, env);
  try {
    await pty.until(() => pty.output.includes("READY> "), `${shell} starts`);
    for (const [i, c] of TYPED.entries()) {
      // Ctrl-U first: nothing typed before is left on the line.
      pty.type(`\x15vmchan cat ${(shell === "fish" && c.fish) || c.typed}\t\n`);
      // A second command marks the end, whether the first ran or was refused (its echo does not contain the mark).
      pty.type(`printf '=D%s=\\n' ONE${i}\n`);
      await pty.until(() => pty.text.includes(`=DONE${i}=`), `${shell}: "vmchan cat ${c.typed}<TAB><Enter>" is done`);
      expect(records()[i], `${shell}: typed "vmchan cat ${c.typed}<TAB>"; the terminal showed ${pty.output}`).toEqual(c.args);
      expect(pwned(), `${shell} ran a name; the terminal showed ${pty.output}`).toEqual([]);
    }
  } finally {
    await pty.close();
    rmSync(home, { recursive: true, force: true });
  }
}

describe("quoting for bash, checked by bash", () => {
  test("2,000 random printable names, written in each quoting state, read back by bash as one literal word", () => {
    // A small deterministic PRNG (xorshift32): the same names on every run.
    let x = 0x9e3779b9;
    const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
    const alphabet = [..." !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~azAZ09", "é", "ü", "中", "\u00a0"];
    const cases: { name: string; text: string }[] = [];
    const opens = { none: "", single: "'", double: '"', ansi: "$'" } as const;
    for (let i = 0; i < 2000; i++) {
      const name = Array.from({ length: 1 + Math.floor(next() * 12) }, () => alphabet[Math.floor(next() * alphabet.length)]!).join("");
      const state = (["none", "single", "double", "ansi"] as const)[i % 4]!;
      cases.push({ name, text: `p${opens[state]}${quoteForBash(name, state)}${closingQuote(state)}` });
    }
    const read = bashReads(cases.map((c) => c.text));
    const wrong = cases.filter((c, i) => read[i]!.length !== 1 || read[i]![0] !== `p${c.name}`).map((c) => ({ ...c, read: read[cases.indexOf(c)] }));
    expect(wrong.slice(0, 5), `${wrong.length} names bash read differently`).toEqual([]);
    expect(pwned()).toEqual([]);
  });
});

describe("completion of hostile names in interactive shells", () => {
  beforeAll(() => ensurePackages(SHELL_PACKAGES), 900_000);
  for (const shell of ["bash", "zsh", "fish"] as const) {
    test(`${shell}: TAB then Enter gives the command each name literally, and runs none`, async () => {
      const fx = hostileFixture();
      try {
        await typeIntoShell(shell, fx);
      } finally {
        fx.dispose();
      }
    });
  }
});
