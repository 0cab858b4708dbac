import { describe, expect, test } from "bun:test";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { openPortFd, parseCharDevices, splitDev } from "../../lib/guest/port-open.ts";

describe("port device check", () => {
  test("splitDev decodes Linux dev_t, including majors and minors past 8 bits", () => {
    expect(splitDev(0x0103n)).toEqual({ major: 1, minor: 3 });
    expect(splitDev(0xe500n)).toEqual({ major: 229, minor: 0 });
    // makedev(511, 300) = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
    expect(splitDev((300n & 0xffn) | (511n << 8n) | ((300n & ~0xffn) << 12n))).toEqual({ major: 511, minor: 300 });
    expect(splitDev((5000n & 0xfffn) << 8n | ((5000n & ~0xfffn) << 32n))).toEqual({ major: 5000, minor: 0 });
  });

  test("parseCharDevices reads only the character section, several names per major", () => {
    const text = "Character devices:\n  1 mem\n  4 /dev/vc/0\n  4 tty\n229 hvc\n247 virtio-portsdev\n\nBlock devices:\n  8 sd\n259 blkext\n";
    const m = parseCharDevices(text);
    expect(m.get(1)).toEqual(["mem"]);
    expect(m.get(4)).toEqual(["/dev/vc/0", "tty"]);
    expect(m.get(229)).toEqual(["hvc"]);
    expect(m.get(247)).toEqual(["virtio-portsdev"]);
    expect(m.get(8), "a block major is not a character driver").toBeUndefined();
  });

  test("a regular file is refused even where /proc/devices names virtio-portsdev; /dev/null passes only if its major is listed", () => {
    const root = mkdtempSync(join(tmpdir(), "vmchan-portopen-"));
    try {
      mkdirSync(join(root, "proc"));
      writeFileSync(join(root, "proc", "devices"), "Character devices:\n  0 virtio-portsdev\n  1 virtio-portsdev\n\nBlock devices:\n");
      writeFileSync(join(root, "file"), "x");
      const refused = (path: string, r: string) => {
        try {
          closeSync(openPortFd(path, "p", { root: r }));
        } catch (e) {
          return e as VmchanError;
        }
        return null;
      };
      const err = refused(join(root, "file"), root);
      expect(err, String(err)).toBeInstanceOf(VmchanError);
      expect(err!.code).toBe(ExitCode.usage);
      expect(err!.message).toBe(`cannot open port "p": ${join(root, "file")} is a regular file, not a virtio-serial port or hvc console`);
      expect(refused("/dev/null", root), "major 1 listed as virtio-portsdev under this root").toBeNull();
      expect(refused("/dev/null", "/")?.message).toBe('cannot open port "p": /dev/null is a character device (1:3 of "mem"), not a virtio-serial port or hvc console');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("a path swapped while it is being opened", () => {
  test("a symlink flipping between a port-like device and a FIFO: the FIFO is never opened", async () => {
    const root = mkdtempSync(join(tmpdir(), "vmchan-portrace-"));
    const reader = { proc: null as ReturnType<typeof Bun.spawn> | null };
    const flipper = { proc: null as ReturnType<typeof Bun.spawn> | null };
    try {
      // A fixture /proc/devices where major 1 is virtio-portsdev: /dev/null (1:3) counts as a port.
      mkdirSync(join(root, "proc"));
      writeFileSync(join(root, "proc", "devices"), "Character devices:\n  1 virtio-portsdev\n\nBlock devices:\n");
      const fifo = join(root, "fifo");
      expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
      const opens = join(root, "opens");
      writeFileSync(opens, "");
      // Each time any writer opens the FIFO, the reader's blocking open returns: one byte per open.
      reader.proc = Bun.spawn(
        ["python3", "-c", `import os\nwhile True:\n  fd = os.open(${JSON.stringify(fifo)}, os.O_RDONLY)\n  with open(${JSON.stringify(opens)}, "a") as f: f.write("o")\n  os.close(fd)\n`],
        { stdout: "ignore", stderr: "inherit" },
      );
      const port = join(root, "port");
      const ready = join(root, "flipping");
      // Flips `port` between a symlink to /dev/null and one to the FIFO, atomically (rename), as fast as it can.
      flipper.proc = Bun.spawn(
        [
          "python3",
          "-c",
          `import os\nr = ${JSON.stringify(root)}\nos.symlink("/dev/null", r + "/a")\nos.symlink(${JSON.stringify(fifo)}, r + "/b")\nos.symlink("/dev/null", r + "/port")\nopen(${JSON.stringify(ready)}, "w").close()\nwhile True:\n  os.symlink("/dev/null", r + "/t1"); os.rename(r + "/t1", r + "/port")\n  os.symlink(${JSON.stringify(fifo)}, r + "/t2"); os.rename(r + "/t2", r + "/port")\n`,
        ],
        { stdout: "ignore", stderr: "inherit" },
      );
      for (const until = Date.now() + 20_000; !existsSync(ready); ) {
        if (Date.now() > until) throw new Error("the flipper did not start");
        await Bun.sleep(10);
      }
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 20_000; i++) {
        let what: string;
        try {
          closeSync(openPortFd(port, "p", { root }));
          what = "opened (the port-like device)";
        } catch (e) {
          what = (e as Error).message.replace(root, "ROOT");
        }
        outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
        if (i % 1000 === 999) await Bun.sleep(0); // let the reader's writes land
      }
      flipper.proc.kill("SIGKILL");
      await flipper.proc.exited;
      // Let the reader record any open that happened, then check that the detector works at all.
      await Bun.sleep(200);
      const seen = readFileSync(opens, "utf8").length;
      const summary = JSON.stringify(Object.fromEntries(outcomes));
      expect(seen, `the FIFO's reader saw ${seen} opens during 20000 attempts; outcomes: ${summary}`).toBe(0);
      expect(outcomes.get("opened (the port-like device)") ?? 0, `the port-like device was never opened: ${summary}`).toBeGreaterThan(0);
      closeSync(openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK));
      for (const until = Date.now() + 20_000; readFileSync(opens, "utf8").length === 0 && Date.now() < until; ) await Bun.sleep(10);
      // (One open may be counted twice: the reader's next open succeeds at once while ours is still open.)
      const control = readFileSync(opens, "utf8").length;
      expect(control, `the reader saw ${control} opens after one open of the FIFO`).toBeGreaterThanOrEqual(1);
    } finally {
      flipper.proc?.kill("SIGKILL");
      reader.proc?.kill("SIGKILL");
      await Promise.all([flipper.proc?.exited, reader.proc?.exited]);
      rmSync(root, { recursive: true, force: true });
    }
  }, 120_000);
});
