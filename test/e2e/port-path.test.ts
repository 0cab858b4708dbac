import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../lib/exit-codes.ts";
import { VMCHAN, vmchan } from "../support/binary.ts";

// A path given where a guest port is expected must be a virtio-serial port or an hvc console:
// every other kind of file is refused with one line and exit 2, and left as it was.

const dir = mkdtempSync(join(tmpdir(), "vmchan-portpath-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

const file = join(dir, "precious.bin");
writeFileSync(file, "precious data that must not change\n");
const fileSha = sha(file);
const fileMtime = statSync(file).mtimeMs;
mkdirSync(join(dir, "a-directory"));
symlinkSync(file, join(dir, "link-to-file"));
symlinkSync(join(dir, "link-to-file"), join(dir, "link-to-link"));
symlinkSync("/dev/null", join(dir, "link-to-null"));
// A fake /dev/virtio-ports entry: the name looks right, the target is a file.
mkdirSync(join(dir, "virtio-ports"));
symlinkSync(file, join(dir, "virtio-ports", "org.example.fake"));
const fifo = join(dir, "a-fifo");
Bun.spawnSync(["mkfifo", fifo]);

const targets: Array<[path: string, kind: RegExp]> = [
  [file, /is a regular file/],
  [join(dir, "link-to-file"), /\(through a symbolic link\) is a regular file/],
  [join(dir, "link-to-link"), /\(through a symbolic link\) is a regular file/],
  [join(dir, "virtio-ports", "org.example.fake"), /\(through a symbolic link\) is a regular file/],
  [join(dir, "a-directory"), /is a directory/],
  [fifo, /is a fifo/],
  ["/dev/null", /is a character device \(1:3 of "mem"\)/],
  [join(dir, "link-to-null"), /is a character device \(1:3/],
  ["/dev/zero", /is a character device \(1:5/],
  ["/dev/full", /is a character device \(1:7/],
];

const commands = (path: string): string[][] => [
  ["send", "--no-wait", path, "--data", "XX"],
  ["send", "--timeout", "1", path, "--data", "XX"],
  ["send", path, file],
  ["cat", "--no-wait", path],
  ["cat", path],
  ["listen", path],
  ["bridge", "--once", path, "-"],
  ["bridge", "--once", "-", path],
  ["send", "--no-wait", `port:${path}`, "--data", "XX"],
];

describe("a path that is not a guest port", () => {
  for (const [path, kind] of targets) {
    test(`${path.replace(dir, "DIR")} is refused by send, cat, listen and bridge, with exit 2, and left unchanged`, async () => {
      for (const args of commands(path)) {
        const r = await vmchan(args, { stdin: "", timeoutMs: 20_000 });
        const seen = `vmchan ${args.join(" ")}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
        expect(r.code, seen).toBe(ExitCode.usage);
        expect(r.stderr, seen).toMatch(/^vmchan: cannot open port ".+": .+ not a virtio-serial port or hvc console \(hint: .*file:PATH\)\n$/);
        expect(r.stderr, seen).toMatch(kind);
        expect(r.stdout.byteLength, seen).toBe(0);
      }
      expect(sha(file), "the regular file's content").toBe(fileSha);
      expect(statSync(file).mtimeMs, "the regular file's mtime").toBe(fileMtime);
    }, 120_000);
  }

  test("a missing path is not created, and says so (exit 3)", async () => {
    const missing = join(dir, "missing", "port");
    const r = await vmchan(["send", "--no-wait", missing, "--data", "XX"]);
    expect(r.code, r.stderr).toBe(ExitCode.notFound);
    expect(r.stderr).toBe(`vmchan: cannot open port "${missing}": ${missing} does not exist (hint: the port may have been unplugged; see 'vmchan ports list')\n`);
    const r2 = await vmchan(["send", "--no-wait", join(dir, "new-file"), "--data", "XX"]);
    expect(r2.code, r2.stderr).toBe(ExitCode.notFound);
    expect(() => statSync(join(dir, "new-file")), "send must not create a file").toThrow();
  });

  test("file:PATH opens an existing file on purpose, without creating or truncating it", async () => {
    const target = join(dir, "explicit.bin");
    writeFileSync(target, "0123456789");
    const r = await vmchan(["send", `file:${target}`, "--data", "AB"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(target, "utf8"), "written in place, not truncated").toBe("AB23456789");
    const c = await vmchan(["cat", `file:${target}`]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout.toString()).toBe("AB23456789");
    const missing = join(dir, "explicit-missing.bin");
    const m = await vmchan(["send", `file:${missing}`, "--data", "AB"]);
    expect(m.code, m.stderr).toBe(ExitCode.notFound);
    expect(() => statSync(missing), "file: must not create a file").toThrow();
    const d = await vmchan(["send", `file:${join(dir, "a-directory")}`, "--data", "AB"]);
    expect(d.code, d.stderr).not.toBe(0);
    expect(d.stderr).toMatch(/^vmchan: cannot open port "file:.+": .+\n$/);
  });

  test("file:FIFO carries the bytes to a reader of the fifo", async () => {
    const reader = Bun.spawn(["cat", fifo], { stdout: "pipe" });
    const r = await vmchan(["send", `file:${fifo}`, "--data", "through the fifo"]);
    expect(r.code, r.stderr).toBe(0);
    // vmchan has closed its end: the reader sees end of file.
    expect(await new Response(reader.stdout).text()).toBe("through the fifo");
    await reader.exited;
  });

  test("the binary under test is the compiled one", () => {
    expect(VMCHAN).toEndWith("dist/vmchan");
  });
});
