import { describe, expect, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
