import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isQemuCommand, parseOptionString, parseQemuArgv, parseQemuBool, splitCmdline } from "../../lib/host/cmdline.ts";
import { hostPort, HostVm } from "../../lib/host/model.ts";

const fixture = (name: string) =>
  readFileSync(join(import.meta.dir, "../fixtures/host", name), "utf8").trimEnd().split("\n");

describe("parseOptionString", () => {
  test("reads key=value pairs and an implied first value", () => {
    expect(parseOptionString("socket,id=c1,path=/tmp/a.sock,server=on,wait=off", { implied: "backend" })).toEqual(
      new Map([["backend", "socket"], ["id", "c1"], ["path", "/tmp/a.sock"], ["server", "on"], ["wait", "off"]]),
    );
  });

  test("unescapes doubled commas in values, the implied one included", () => {
    expect(parseOptionString("lab,,one,debug-threads=on", { implied: "guest" })).toEqual(
      new Map([["guest", "lab,one"], ["debug-threads", "on"]]),
    );
    expect(parseOptionString("path=/a,,b,,,,c.sock,id=x")).toEqual(new Map([["path", "/a,b,,c.sock"], ["id", "x"]]));
    expect(parseOptionString("name=trailing,,")).toEqual(new Map([["name", "trailing,"]]));
  });

  test("reads the old flag syntax: bare key is on, no-prefixed key is off", () => {
    expect(parseOptionString("socket,id=c,path=/p,server,nowait", { implied: "backend" })).toEqual(
      new Map([["backend", "socket"], ["id", "c"], ["path", "/p"], ["server", "on"], ["wait", "off"]]),
    );
  });

  test("lets a later key win and keeps '=' inside values", () => {
    expect(parseOptionString("a=1,b=x=y,a=2")).toEqual(new Map([["a", "2"], ["b", "x=y"]]));
  });

  test("without an implied name a first bare word is a flag", () => {
    expect(parseOptionString("server,path=/p")).toEqual(new Map([["server", "on"], ["path", "/p"]]));
  });
});

describe("small helpers", () => {
  test("QEMU booleans accept on/off, yes/no, true/false, y/n", () => {
    expect(["on", "yes", "true", "y"].map(parseQemuBool)).toEqual([true, true, true, true]);
    expect(["off", "no", "false", "n"].map(parseQemuBool)).toEqual([false, false, false, false]);
    expect(parseQemuBool("maybe")).toBeUndefined();
  });

  test("argv[0] is QEMU for qemu-system-* and qemu-kvm, with or without a path", () => {
    expect(["/usr/bin/qemu-system-x86_64", "qemu-system-aarch64", "/usr/libexec/qemu-kvm", "qemu-kvm"].map(isQemuCommand)).toEqual([
      true, true, true, true,
    ]);
    expect(["qemu-img", "/usr/bin/qemu-nbd", "bash", "qemu-system"].map(isQemuCommand)).toEqual([false, false, false, false]);
  });

  test("splitCmdline drops the final NUL only", () => {
    expect(splitCmdline("qemu\0-name\0\0x\0")).toEqual(["qemu", "-name", "", "x"]);
  });
});

describe("parseQemuArgv", () => {
  test("a hand-written command line gives every port with its chardev, escapes undone", () => {
    const r = parseQemuArgv(fixture("handmade.argv"));
    expect(HostVm.parse(r.vm)).toEqual(r.vm);
    expect(r.vm).toEqual({
      name: "lab,one",
      pid: null,
      uuid: "6f9619ff-8b86-d011-b42d-00c04fc964ff",
      sources: ["cmdline"],
      qmp: ["/run/vm/lab,one/qmp.sock"],
      startedPaused: true,
      running: null,
      ports: [
        hostPort({
          kind: "serial", name: "org.example.a", id: "pa", chardev: "c1", bus: "vs0.0", nr: 3,
          backend: "unix", qemuBackend: "socket", path: "/run/vm/a.sock", mode: "connect",
        }),
        hostPort({
          kind: "console", name: "con0", id: "pc", chardev: "c2",
          backend: "unix", qemuBackend: "socket", path: "/run/vm/b,c.sock", mode: "connect",
        }),
        hostPort({
          kind: "serial", name: "weird,name", chardev: "c3",
          backend: "unix", qemuBackend: "socket", path: "/run/vm/client.sock", mode: "listen", reconnectMs: 2000,
        }),
        hostPort({
          kind: "serial", name: "tcp.port", id: "tp", chardev: "c4",
          backend: "tcp", qemuBackend: "socket", address: "127.0.0.1:4555", mode: "connect",
        }),
        hostPort({ kind: "serial", name: "pty.port", id: "ptyp", chardev: "c5", backend: "pty", qemuBackend: "pty" }),
        hostPort({ kind: "serial", name: "log.port", id: "logp", chardev: "c6", backend: "other", qemuBackend: "file" }),
        hostPort({
          kind: "serial", name: "rel.port", id: "relp", chardev: "c7",
          backend: "unix", qemuBackend: "socket", path: "rel/listen.sock", mode: "listen", reconnectMs: 250,
        }),
        hostPort({ kind: "serial", name: "no.chardev", id: "nc" }),
      ],
    });
    expect(r.passedFds).toEqual([]);
    expect(r.notes).toEqual(["cannot follow -readconfig /etc/qemu/extra.cfg: devices and chardevs in config files are not read"]);
  });

  test("a libvirt command line: JSON -device, fd-passed sockets, the monitor given as an fd", () => {
    const r = parseQemuArgv(fixture("libvirt.argv"));
    expect(r.vm).toEqual({
      name: "web01",
      pid: null,
      uuid: "0b4fa8c2-1d5e-4b8a-9f3e-2c7d9e6a5b10",
      sources: ["cmdline"],
      qmp: [],
      startedPaused: true,
      running: null,
      ports: [
        hostPort({
          kind: "serial", name: "org.qemu.guest_agent.0", id: "channel0", chardev: "charchannel0", bus: "virtio-serial0.0", nr: 1,
          backend: "fd", qemuBackend: "socket", mode: "connect",
        }),
        hostPort({
          kind: "serial", name: "com.redhat.spice.0", id: "channel1", chardev: "charchannel1", bus: "virtio-serial0.0", nr: 2,
          backend: "other", qemuBackend: "spicevmc",
        }),
        hostPort({
          kind: "serial", name: "org.example.data", id: "channel2", chardev: "charchannel2", bus: "virtio-serial0.0", nr: 3,
          backend: "fd", qemuBackend: "socket", mode: "connect",
        }),
        hostPort({ kind: "console", id: "console1", chardev: "charconsole1", backend: "pty", qemuBackend: "pty" }),
      ],
    });
    expect(r.passedFds).toEqual([
      { chardev: "charmonitor", fd: 30, use: "qmp" },
      { chardev: "charchannel0", fd: 33, use: "port" },
      { chardev: "charchannel2", fd: 34, use: "port" },
    ]);
    expect(r.notes).toEqual([]);
  });

  test("-name without guest=, double-dash options and a qmp chardev through -mon", () => {
    const r = parseQemuArgv([
      "qemu-kvm", "--name", "plain", "-chardev", "socket,id=q,path=/q.sock,server=on,wait=off",
      "-mon", "chardev=q,mode=control,pretty=on", "-qmp", "unix:/client-mode.sock", "-qmp-pretty", "tcp:localhost:4444,server,nowait",
    ]);
    expect(r.vm.name).toBe("plain");
    // Only server-mode unix monitors are usable: the client-mode one connects out, tcp is not a path.
    expect(r.vm.qmp).toEqual(["/q.sock"]);
    expect(r.vm.startedPaused).toBe(false);
  });

  test("a JSON -device that does not parse gives a note, not an exception", () => {
    const r = parseQemuArgv(["qemu-system-x86_64", "-device", '{"driver":"virtserialport",']);
    expect(r.vm.ports).toEqual([]);
    expect(r.notes).toEqual(['cannot parse -device {"driver":"virtserialport",: invalid JSON']);
  });

  test("a JSON -chardev is noted, and its port keeps an unknown backend", () => {
    const r = parseQemuArgv([
      "qemu-system-x86_64", "-chardev", '{"id":"j","backend":{"type":"socket"}}', "-device", "virtserialport,chardev=j,name=n",
    ]);
    expect(r.vm.ports).toEqual([hostPort({ kind: "serial", name: "n", chardev: "j" })]);
    expect(r.notes).toEqual(['cannot follow -chardev {"id":"j","backend":{"type":"socket"}}: the JSON form is not read']);
  });

  test("abstract unix sockets are shown as @name", () => {
    const r = parseQemuArgv([
      "qemu-system-x86_64", "-chardev", "socket,id=a,path=vmchan-a,abstract=on,server=on,wait=off", "-device", "virtserialport,chardev=a,name=n",
    ]);
    expect(r.vm.ports[0]!.path).toBe("@vmchan-a");
  });
});

describe("hostile command lines", () => {
  test("an option string of a million flags and no '=' is read in linear time", () => {
    const started = performance.now();
    const o = parseOptionString("virtserialport" + ",a".repeat(1_000_000), { implied: "driver" });
    const ms = performance.now() - started;
    // Linear is tens of milliseconds; the quadratic scan this guards against takes hours.
    expect(ms, `what I saw: ${ms.toFixed(0)} ms, ${o.size} keys`).toBeLessThan(10_000);
    expect([...o], `what I saw: ${[...o].slice(0, 5)}`).toEqual([["driver", "virtserialport"], ["a", "on"]]);
  });

  test("a value of a million escaped commas is read whole", () => {
    const o = parseOptionString("path=" + ",,".repeat(1_000_000) + ",id=c0");
    expect(o.get("path")?.length).toBe(1_000_000);
    expect(o.get("id")).toBe("c0");
  });
});
