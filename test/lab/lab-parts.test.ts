/** The lab's pure parts, without booting: the cpio writer, module ordering, the QEMU command line. */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpioWriter, padding, trailer } from "./cpio.ts";
import { ensurePackages } from "./host-deps.ts";
import { resolveModules } from "./kernel.ts";
import { controlPortName, qemuArgs, resolvePorts } from "./qemu-args.ts";

let dir: string | null = null;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

function sh(cmd: string, cwd: string): string {
  const r = Bun.spawnSync(["sh", "-c", cmd], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd} failed: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

describe("cpio writer", () => {
  test("busybox cpio unpacks both archives of an initrd, the second written in pieces", async () => {
    await ensurePackages(["busybox-static"]);
    dir = mkdtempSync(join(tmpdir(), "vmchan-cpio-"));
    const first = new CpioWriter(1).dir("bin").file("bin/hello", "hi\n", 0o755).symlink("bin/sh", "/bin/busybox").dir("etc").file("etc/odd", "12345").bytes();
    // The second archive is written in pieces, as writeInitrd does for the big binary.
    const w = new CpioWriter(1000).dir("usr").dir("usr/bin");
    const data = Buffer.from("binary\0data");
    const head = Buffer.concat([w.bytes(false), w.fileHeader("usr/bin/tool", data.length)]);
    const size = head.length + data.length;
    const second = Buffer.concat([head, data, padding(size), trailer(size + padding(size).length)]);
    expect(first.length % 512).toBe(0);
    expect(second.length % 512).toBe(0);
    // busybox cpio stops at the first trailer, so unpack the parts one after the other, as the kernel walks them.
    writeFileSync(join(dir, "first.cpio"), first);
    writeFileSync(join(dir, "second.cpio"), second);
    sh("mkdir out && cd out && busybox cpio -id < ../first.cpio && busybox cpio -id < ../second.cpio", dir);
    const out = join(dir, "out");
    expect(readFileSync(join(out, "bin/hello"), "utf8")).toBe("hi\n");
    expect(statSync(join(out, "bin/hello")).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(out, "bin/sh"))).toBe("/bin/busybox");
    expect(readFileSync(join(out, "etc/odd"), "utf8")).toBe("12345");
    expect(readFileSync(join(out, "usr/bin/tool"))).toEqual(data);
    expect(sh("busybox cpio -t < first.cpio", dir).split("\n").filter(Boolean)).toEqual(["bin", "bin/hello", "bin/sh", "etc", "etc/odd"]);
  });

  test("a character device entry carries its major and minor numbers", () => {
    const bytes = new CpioWriter(1).charDevice("dev/console", 5, 1).bytes(false).toString("latin1");
    // Fields after the magic, 8 hex digits each: ino, mode, uid, gid, nlink, mtime, size, devmajor, devminor, rdevmajor, rdevminor.
    const fields = bytes.slice(6, 6 + 11 * 8).match(/.{8}/g)!;
    expect(fields[1]).toBe((0o020600).toString(16).padStart(8, "0"));
    expect([fields[9], fields[10]]).toEqual(["00000005", "00000001"]);
  });
});

describe("kernel modules", () => {
  const dep = [
    "kernel/drivers/virtio/virtio_ring.ko:",
    "kernel/drivers/virtio/virtio.ko:",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko:",
    "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/char/virtio_console.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko",
  ].join("\n");

  test("orders modules dependencies first, each once, keeping compressed file names", () => {
    expect(resolveModules(dep, "", ["virtio_pci", "virtio_console"])).toEqual([
      { name: "virtio_pci_modern_dev", file: "kernel/drivers/virtio/virtio_pci_modern_dev.ko" },
      { name: "virtio_pci_legacy_dev", file: "kernel/drivers/virtio/virtio_pci_legacy_dev.ko" },
      { name: "virtio_ring", file: "kernel/drivers/virtio/virtio_ring.ko" },
      { name: "virtio", file: "kernel/drivers/virtio/virtio.ko" },
      { name: "virtio_pci", file: "kernel/drivers/virtio/virtio_pci.ko" },
      { name: "virtio_console", file: "kernel/drivers/char/virtio_console.ko.xz" },
    ]);
  });

  test("skips built-in modules", () => {
    const builtin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n";
    expect(resolveModules(dep, builtin, ["virtio_console"]).map((m) => m.name)).toEqual(["virtio_console"]);
  });

  test("fails naming a module that is neither built in nor a module", () => {
    expect(() => resolveModules(dep, "", ["virtio_nope"])).toThrow('kernel module "virtio_nope" is neither built in nor in modules.dep');
  });
});

describe("QEMU command line", () => {
  const base = { name: "t", memoryMiB: 1024, kernel: "/k", initrd: "/i", consoleLog: "/d/console.log", qmpSocket: "/d/qmp.sock", controlSocket: "/d/ctl.sock" };

  test("puts the ports under test on bus vs0 before the control bus, with ids, chardevs and nr", () => {
    const ports = resolvePorts([{ name: "con", kind: "console", nr: 0 }, { name: "org.example.a" }, { name: "c", mode: "client", id: "my-c" }], "/d");
    const args = qemuArgs({ ...base, links: true, ports });
    const devices = args.flatMap((a, i) => (args[i - 1] === "-device" || args[i - 1] === "-chardev" ? [a] : []));
    expect(devices).toEqual([
      "virtio-serial-pci,id=vs0",
      "socket,id=ch-port-con,path=/d/p0.sock,server=on,wait=off",
      "virtconsole,bus=vs0.0,chardev=ch-port-con,name=con,id=port-con,nr=0",
      "socket,id=ch-port-org.example.a,path=/d/p1.sock,server=on,wait=off",
      "virtserialport,bus=vs0.0,chardev=ch-port-org.example.a,name=org.example.a,id=port-org.example.a",
      "socket,id=ch-my-c,path=/d/p2.sock,reconnect=1",
      "virtserialport,bus=vs0.0,chardev=ch-my-c,name=c,id=my-c",
      "virtio-serial-pci,id=vsctl",
      "socket,id=ch-lab-control,path=/d/ctl.sock,server=on,wait=off",
      `virtserialport,bus=vsctl.0,chardev=ch-lab-control,name=${controlPortName},id=lab-control,nr=1`,
    ]);
    expect(args[args.indexOf("-append") + 1]).toBe(`console=ttyS0 quiet panic=-1 lab.ctl=${controlPortName} lab.ports=4 lab.links=1`);
    expect(args.slice(0, 5)).toEqual(["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max"]);
  });

  test("derives ids QEMU accepts from any port name", () => {
    expect(resolvePorts([{ name: "org.qemu.guest_agent.0" }, { name: "a/b:c" }], "/d").map((p) => p.id)).toEqual([
      "port-org.qemu.guest_agent.0",
      "port-a_b_c",
    ]);
  });

  test("refuses duplicate names, duplicate ids, the control port's name and over-long socket paths", () => {
    expect(() => resolvePorts([{ name: "a" }, { name: "a" }], "/d")).toThrow('lab port name "a" is used twice');
    expect(() => resolvePorts([{ name: "a/b" }, { name: "a:b" }], "/d")).toThrow('lab port id "port-a_b" is used twice');
    expect(() => resolvePorts([{ name: controlPortName }], "/d")).toThrow("is used twice");
    expect(() => resolvePorts([{ name: "a,b" }], "/d")).toThrow("has a space or comma");
    expect(() => resolvePorts([{ name: "a" }], `/${"x".repeat(120)}`)).toThrow("too long for a unix socket");
  });
});

describe("agent client", () => {
  /** An AgentClient on one end of a unix socket pair, with a scripted agent on the other. */
  async function withAgent(reply: (line: string, write: (text: string) => void) => void) {
    const net = await import("node:net");
    const { AgentClient } = await import("./agent-client.ts");
    dir = mkdtempSync(join(tmpdir(), "vmchan-agent-"));
    const path = join(dir, "ctl.sock");
    const server = net.createServer((s) => {
      s.setEncoding("latin1");
      let rest = "";
      s.on("data", (chunk: string) => {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) reply(line, (t) => s.write(t));
      });
      s.write("hello 1\n");
    });
    await new Promise<void>((r) => server.listen(path, r));
    const socket = net.connect(path);
    const client = new AgentClient(socket);
    await client.ready(10_000);
    return { client, close: () => (client.close(), server.close()) };
  }
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  test("a job whose pid and done arrive in one read can still be waited for", async () => {
    // The race CI hit: "done" came in the same chunk as "pid", and the job was forgotten before wait().
    const { client, close } = await withAgent((line, write) => {
      const id = line.split(" ")[0];
      write(`${id} pid 42\n${id} done 3 ${b64("out")} ${b64("err")}\n`);
    });
    try {
      const job = await client.spawn("true");
      expect(job.pid).toBe(42);
      expect(await job.wait({ timeoutMs: 10_000 })).toEqual({ code: 3, stdout: "out", stderr: "err" });
      expect(await client.run("true", { timeoutMs: 10_000 })).toEqual({ code: 3, stdout: "out", stderr: "err" });
    } finally {
      close();
    }
  });

  test("a wait that times out kills the job's process group, so it cannot hold a port into the next test", async () => {
    const scripts: string[] = [];
    let killed!: () => void;
    const kill = new Promise<void>((r) => (killed = r));
    const { client, close } = await withAgent((line, write) => {
      const [id, script] = line.split(" ");
      const text = Buffer.from(script ?? "", "base64").toString();
      scripts.push(text);
      write(`${id} pid ${40 + scripts.length}\n`);
      if (text.startsWith("kill ")) {
        write(`${id} done 0 ${b64("")} ${b64("")}\n`);
        killed();
      }
    });
    try {
      const job = await client.spawn("sleep 300");
      await expect(job.wait({ timeoutMs: 50 })).rejects.toThrow("guest command timed out after 50 ms (its process group is killed)");
      await kill;
      expect(scripts).toEqual(["sleep 300", "kill -s KILL -- -41 2>/dev/null; true"]);
    } finally {
      close();
    }
  });
});
