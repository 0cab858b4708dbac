import { afterEach, describe, expect, test } from "bun:test";
import { ExitCode } from "../../lib/exit-codes.ts";
import { portsList } from "../../lib/ports-list.ts";
import { PortsListing } from "../../lib/schema.ts";
import { runCommand } from "../support/context.ts";
import { FixtureRoot } from "../support/fixture.ts";

const debug = (over: Record<string, string | number> = {}) => ({
  guest_connected: 0,
  host_connected: 1,
  outvq_full: 0,
  bytes_sent: 10,
  bytes_received: 20,
  bytes_discarded: 0,
  is_console: "no",
  console_vtermno: 0,
  ...over,
});

let fx: FixtureRoot;
afterEach(() => fx?.dispose());

describe("ports list", () => {
  test("lists serial and console ports with debugfs state, links and holders", async () => {
    fx = new FixtureRoot()
      .port("vport0p0", "con0", { link: false, debug: debug({ is_console: "yes", console_vtermno: 1, guest_connected: 1 }) })
      .port("vport0p1", "org.example.a", { debug: debug() })
      .port("vport0p2", "org.example.b", { link: false, debug: debug({ host_connected: 0, guest_connected: 1 }) })
      .process(412, "cat", ["/dev/vport0p2", "/dev/null"])
      .process(500, "getty", ["/dev/hvc0"]);
    const r = await runCommand(fx.root, (ctx) => portsList(ctx, { json: true }));
    expect(r.code).toBe(ExitCode.ok);
    expect(r.stderr).toBe("");
    const listing = PortsListing.parse(JSON.parse(r.stdout));
    expect(listing.guest.map((p) => [p.name, p.device, p.kind, p.console, p.linkPresent])).toEqual([
      ["con0", "/dev/vport0p0", "console", "/dev/hvc0", false],
      ["org.example.a", "/dev/vport0p1", "serial", null, true],
      ["org.example.b", "/dev/vport0p2", "serial", null, false],
    ]);
    const [con, a, b] = listing.guest;
    expect(con!.holders).toEqual([{ pid: 500, command: "getty" }]);
    expect(a!.hostConnected).toBe(true);
    expect(a!.guestConnected).toBe(false);
    expect(a!.bytesSent).toBe(10);
    expect(a!.holders).toEqual([]);
    expect(b!.hostConnected).toBe(false);
    expect(b!.holders).toEqual([{ pid: 412, command: "cat" }]);
    expect(b!.link).toBe("/dev/virtio-ports/org.example.b");
  });

  test("prints a table with one row per port", async () => {
    fx = new FixtureRoot()
      .port("vport0p1", "org.example.a", { debug: debug() })
      .port("vport0p2", "org.example.b", { link: false, debug: debug({ host_connected: 0 }) })
      .process(77, "sleep", ["/dev/vport0p1"]);
    const r = await runCommand(fx.root, (ctx) => portsList(ctx));
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^NAME\s+DEVICE\s+LINK\s+KIND\s+HOST\s+GUEST\s+SENT\s+RECEIVED\s+HELD BY$/);
    expect(lines[1]!.split(/\s{2,}/)).toEqual(["org.example.a", "/dev/vport0p1", "present", "serial", "connected", "closed", "10", "20", "77 (sleep)"]);
    expect(lines[2]!.split(/\s{2,}/)).toEqual(["org.example.b", "/dev/vport0p2", "missing", "serial", "disconnected", "closed", "10", "20", "-"]);
  });

  test("shows connection state as unknown when debugfs is unreadable, never guessed", async () => {
    fx = new FixtureRoot().port("vport1p0", "con", {}).port("vport1p3", "org.example.x", {});
    const r = await runCommand(fx.root, (ctx) => portsList(ctx, { json: true }));
    const listing = PortsListing.parse(JSON.parse(r.stdout));
    expect(listing.guest.map((p) => [p.port, p.kind, p.hostConnected, p.guestConnected, p.bytesSent])).toEqual([
      ["vport1p0", "console", null, null, null],
      ["vport1p3", "unknown", null, null, null],
    ]);
    const table = await runCommand(fx.root, (ctx) => portsList(ctx));
    expect(table.stdout).toContain("unknown");
    expect(table.stdout.split("\n")[2]).toMatch(/org\.example\.x\s+\/dev\/vport1p3\s+present\s+unknown\s+unknown\s+unknown\s+-\s+-/);
  });

  test("orders ports numerically, vport0p10 after vport0p2", async () => {
    fx = new FixtureRoot().port("vport0p10", "ten", {}).port("vport0p2", "two", {}).port("vport1p1", "other", {});
    const r = await runCommand(fx.root, (ctx) => portsList(ctx, { json: true }));
    expect(PortsListing.parse(JSON.parse(r.stdout)).guest.map((p) => p.port)).toEqual(["vport0p2", "vport0p10", "vport1p1"]);
  });

  test("says a port's name is not published yet instead of failing", async () => {
    fx = new FixtureRoot().dir("/sys/class/virtio-ports/vport0p4").file("/dev/vport0p4", "");
    const r = await runCommand(fx.root, (ctx) => portsList(ctx, { json: true }));
    const [p] = PortsListing.parse(JSON.parse(r.stdout)).guest;
    expect(p!.name).toBeNull();
    expect(p!.link).toBeNull();
  });

  test("no ports: not a guest, exit code noPorts with a one-line reason", async () => {
    fx = new FixtureRoot().file("/proc/cpuinfo", "flags\t\t: fpu vme de\n");
    const r = await runCommand(fx.root, (ctx) => portsList(ctx));
    expect(r.code).toBe(ExitCode.noPorts);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^vmchan: no virtio-serial ports: this machine is not a virtual machine guest, and it runs no QEMU VM \(hint: .+\)\n$/);
  });

  test("no ports: a VM without a virtio-serial device", async () => {
    fx = new FixtureRoot().file("/sys/bus/virtio/devices/virtio0/device", "0x0001\n");
    const r = await runCommand(fx.root, (ctx) => portsList(ctx));
    expect(r.code).toBe(ExitCode.noPorts);
    expect(r.stderr).toContain("this machine has no virtio-serial device");
  });

  test("no ports: the device is there but virtio_console is not loaded", async () => {
    fx = new FixtureRoot().file("/sys/bus/virtio/devices/virtio1/device", "0x0003\n");
    const r = await runCommand(fx.root, (ctx) => portsList(ctx));
    expect(r.code).toBe(ExitCode.noPorts);
    expect(r.stderr).toBe("vmchan: no virtio-serial ports: the virtio_console module is not loaded, and it runs no QEMU VM (hint: run 'modprobe virtio_console' as root)\n");
  });
});

describe("ports list on a host", () => {
  const qemu = (...argv: string[]) => argv.join("\0") + "\0";
  test("shows each VM's ports from its QEMU command line, as a table and as JSON", async () => {
    fx = new FixtureRoot()
      .file(
        "/proc/4242/cmdline",
        qemu(
          "qemu-system-x86_64", "-name", "guest=vm1,debug-threads=on", "-device", "virtio-serial-pci,id=vs0",
          "-chardev", "socket,id=c1,path=/run/vm1/a,,b.sock,server=on,wait=off",
          "-device", "virtserialport,bus=vs0.0,chardev=c1,name=org.example.a,id=pa",
          "-chardev", "socket,id=c2,path=/run/vm1/log.sock,reconnect=1",
          "-device", "virtconsole,chardev=c2,name=con0,id=pc",
        ),
      )
      .file("/proc/4242/status", "Name:\tqemu-system-x86\nUid:\t64055\t64055\t64055\t64055\nGid:\t64055\t64055\t64055\t64055\n")
      .file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nlibvirt-qemu:x:64055:108:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n")
      .dir("/proc/4242/fd");
    const r = await runCommand(fx.root, (ctx) => portsList(ctx, { qmp: false }));
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").map((l) => l.split(/\s{2,}/))).toEqual([
      ["VM", "PID", "USER", "PORT", "KIND", "SOCKET", "MODE", "GUEST", "CLIENT"],
      ["vm1", "4242", "libvirt-qemu", "org.example.a", "serial", "/run/vm1/a,b.sock", "we connect", "unknown", "unknown"],
      ["vm1", "4242", "libvirt-qemu", "con0", "console", "/run/vm1/log.sock", "QEMU connects", "unknown", "unknown"],
      [""],
    ]);
    const json = PortsListing.parse(JSON.parse((await runCommand(fx.root, (ctx) => portsList(ctx, { qmp: false, json: true }))).stdout));
    expect(json.guest).toEqual([]);
    expect(json.host.vms.map((v) => [v.name, v.pid, v.owner, v.ports.map((p) => [p.name, p.kind, p.path, p.mode])])).toEqual([
      ["vm1", 4242, { uid: 64055, user: "libvirt-qemu" }, [["org.example.a", "serial", "/run/vm1/a,b.sock", "connect"], ["con0", "console", "/run/vm1/log.sock", "listen"]]],
    ]);
    const missing = await runCommand(fx.root, (ctx) => portsList(ctx, { qmp: false, vm: "vm2" }));
    expect(missing.code).toBe(ExitCode.notFound);
    expect(missing.stderr).toBe(`vmchan: no running VM named "vm2" (hint: see 'vmchan ports list' for every VM)\n`);
  });
});
