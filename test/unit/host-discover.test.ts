import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { describeError } from "../../lib/host/describe-error.ts";
import { discoverHosts } from "../../lib/host/discover.ts";
import { HostDiscovery, hostPort, type HostDiscovery as Discovery } from "../../lib/host/model.ts";
import { parseProcNetUnix } from "../../lib/host/proc-sockets.ts";
import { QmpError } from "../../lib/host/qmp.ts";
import { applyQmpView, parseChardevFilename, type QmpConnect, type QmpLike } from "../../lib/host/qmp-state.ts";
import { resolveVmPort } from "../../lib/host/resolve-vm-port.ts";
import { FixtureRoot } from "../support/fixture.ts";

const fixtureText = (name: string) => readFileSync(join(import.meta.dir, "../fixtures/host", name), "utf8");
const argv = (name: string) => fixtureText(name).trimEnd().split("\n");

/** A QEMU as QMP shows it: run state, chardevs and QOM devices (path -> type and properties). */
interface FakeMachine {
  running: boolean;
  chardevs: { label: string; filename: string; "frontend-open": boolean }[];
  devices: Record<string, { type: string; props?: Record<string, unknown> }>;
}

/** Answers the commands discovery sends, the way QEMU 7.2 answered them in the lab; records every call. */
class FakeQmp implements QmpLike {
  calls: string[] = [];
  closed = false;
  constructor(private machine: FakeMachine) {}
  async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    this.calls.push(args ? `${command} ${JSON.stringify(args)}` : command);
    const m = this.machine;
    switch (command) {
      case "query-status":
        return { running: m.running, singlestep: false, status: m.running ? "running" : "prelaunch" } as T;
      case "query-chardev":
        return m.chardevs as T;
      case "qom-list": {
        const prefix = `${args!.path}/`;
        const children = Object.entries(m.devices)
          .filter(([p]) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/"))
          .map(([p, d]) => ({ name: p.slice(prefix.length), type: `child<${d.type}>` }));
        return [{ name: "type", type: "string" }, ...children] as T;
      }
      case "qom-get": {
        const props = m.devices[String(args!.path)]?.props ?? {};
        const v = props[String(args!.property)];
        if (v === undefined) throw new QmpError(command, "GenericError", `Property '${args!.property}' not found`);
        return v as T;
      }
    }
    throw new QmpError(command, "CommandNotFound", `The command ${command} has not been found`);
  }
  close(): void {
    this.closed = true;
  }
}

const port = (name: string, chardev: string, nr: number, bus = "/machine/peripheral/vs0/virtio-backend/vs0.0") => ({
  name,
  chardev,
  nr,
  parent_bus: bus,
});

/** The handmade VM after a hot-plug of "org.example.hot" and an unplug of "log.port". */
const labMachine: FakeMachine = {
  running: false,
  chardevs: [
    { label: "c1", filename: "unix:/run/vm/a.sock,server=on", "frontend-open": false },
    { label: "c2", filename: "disconnected:unix:/run/vm/b,c.sock,server=on", "frontend-open": true },
    { label: "c3", filename: "unix:", "frontend-open": false },
    { label: "c4", filename: "disconnected:tcp:127.0.0.1:4555,server=on", "frontend-open": true },
    { label: "c5", filename: "pty:/dev/pts/7", "frontend-open": false },
    { label: "c6", filename: "file", "frontend-open": false },
    { label: "c7", filename: "disconnected:unix:rel/listen.sock", "frontend-open": false },
    { label: "hpc", filename: "disconnected:unix:/run/vm/hot.sock,server=on", "frontend-open": false },
    { label: "compat_monitor0", filename: "unix:/run/vm/lab,one/qmp.sock,server=on", "frontend-open": true },
  ],
  devices: {
    "/machine/peripheral/vs0": { type: "virtio-serial-pci" },
    "/machine/peripheral/pa": { type: "virtserialport", props: port("org.example.a", "c1", 3) },
    "/machine/peripheral/pc": { type: "virtconsole", props: port("con0", "c2", 0) },
    "/machine/peripheral/tp": { type: "virtserialport", props: port("tcp.port", "c4", 2) },
    "/machine/peripheral/ptyp": { type: "virtserialport", props: port("pty.port", "c5", 4) },
    "/machine/peripheral/relp": { type: "virtserialport", props: port("rel.port", "c7", 7) },
    "/machine/peripheral/nc": { type: "virtserialport", props: port("no.chardev", "", 8) },
    "/machine/peripheral/hp": { type: "virtserialport", props: port("org.example.hot", "hpc", 5) },
    "/machine/peripheral-anon/device[0]": { type: "virtserialport", props: port("weird,name", "c3", 1) },
  },
};

/** /proc/PID/net/unix text for (inode, state, listening, path) rows. */
function netUnix(rows: [number, number, boolean, string][]): string {
  const lines = rows.map(
    ([inode, st, listening, path], i) =>
      `${i.toString(16).padStart(16, "0")}: 00000002 00000000 ${listening ? "00010000" : "00000000"} 0001 ${st.toString().padStart(2, "0")} ${inode} ${path}`,
  );
  return ["Num       RefCount Protocol Flags    Type St Inode Path", ...lines].join("\n") + "\n";
}

/** A fake /proc with the two fixture VMs, two more QEMUs whose QMP misbehaves, and some non-QEMU noise. */
function fakeHost(): FixtureRoot {
  const fx = new FixtureRoot();
  const nul = (a: string[]) => a.join("\0") + "\0";
  fx.file("/proc/1/cmdline", nul(["/sbin/init", "splash"]));
  fx.file("/proc/77/cmdline", ""); // a kernel thread
  fx.file("/proc/uptime", "1.0 1.0\n");
  fx.link("/proc/self", "1");
  // A cmdline that cannot be read: a directory fails like a permission error would (chmod cannot stop root).
  mkdirSync(join(fx.root, "/proc/99/cmdline"), { recursive: true });

  fx.file("/proc/4242/cmdline", nul(argv("handmade.argv")));
  fx.file("/proc/4242/status", "Name:\tqemu-system-x86\nUmask:\t0022\nUid:\t1000\t64055\t64055\t64055\n");
  fx.file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nlibvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n");
  fx.link("/proc/4242/cwd", "/srv/vms");
  fx.file(
    "/proc/4242/net/unix",
    netUnix([
      [100, 1, true, "/run/vm/a.sock"],
      [101, 3, false, "/run/vm/a.sock"], // accepted: a client holds a.sock
      [0, 2, false, "/run/vm/a.sock"], // queued in the backlog: does not count
      [102, 1, true, "/run/vm/b,c.sock"],
      [103, 1, true, "/run/vm/lab,one/qmp.sock"],
      [555, 3, false, "/run/vm/b,c.sock"], // another process's connection, not QEMU's fd
    ]),
  );
  for (const [fd, inode] of [[3, 103], [8, 100], [9, 101], [10, 102]]) fx.link(`/proc/4242/fd/${fd}`, `socket:[${inode}]`);
  fx.link("/proc/4242/fd/0", "/dev/null");

  fx.file("/proc/5151/cmdline", nul(argv("libvirt.argv")));
  fx.file(
    "/proc/5151/net/unix",
    netUnix([
      [200, 1, true, "/var/lib/libvirt/qemu/domain-3-web01/monitor.sock"],
      [201, 3, false, "/var/lib/libvirt/qemu/domain-3-web01/monitor.sock"],
      [202, 1, true, "/run/libvirt/qemu/channel/3-web01/org.qemu.guest_agent.0"],
      [203, 3, false, "/run/libvirt/qemu/channel/3-web01/org.qemu.guest_agent.0"],
      [204, 1, true, "/srv/chan/web01 & data's.sock"],
    ]),
  );
  for (const [fd, inode] of [[30, 200], [31, 201], [33, 202], [34, 204], [40, 203]]) fx.link(`/proc/5151/fd/${fd}`, `socket:[${inode}]`);
  fx.file("/run/libvirt/qemu/web01.xml", fixtureText("web01.xml"));

  // A QEMU started through a wrapper that rewrote argv[0]; its binary was upgraded since.
  fx.file("/proc/6000/cmdline", nul(["vm-launcher", "-name", "held", "-qmp", "unix:/run/vm/held-qmp.sock,server=on,wait=off"]));
  fx.link("/proc/6000/exe", "/usr/bin/qemu-system-aarch64 (deleted)");
  fx.file("/proc/6001/cmdline", nul(["qemu-system-x86_64", "-name", "stalls", "-qmp", "unix:/run/vm/stall.sock,server=on,wait=off"]));
  return fx;
}

/** A connect function over fake QEMUs by socket path: "held" never greets (as when libvirt holds QMP), "stall" never answers at all. */
function fakeConnect(opened: FakeQmp[]): QmpConnect & { paths: string[] } {
  const paths: string[] = [];
  const connect = async (path: string, opts: { timeoutMs: number }) => {
    paths.push(path);
    if (path === "/run/vm/lab,one/qmp.sock") {
      const q = new FakeQmp(labMachine);
      opened.push(q);
      return q;
    }
    if (path === "/run/vm/held-qmp.sock") {
      await Bun.sleep(opts.timeoutMs);
      throw new Error(`QMP connect to "${path}" failed: no greeting within ${opts.timeoutMs} ms`);
    }
    if (path === "/run/vm/stall.sock") return new Promise<never>(() => {});
    throw Object.assign(new Error(`QMP connect to "${path}" failed: connect ECONNREFUSED ${path}`), { code: "ECONNREFUSED" });
  };
  return Object.assign(connect, { paths });
}

let fx: FixtureRoot | undefined;
afterEach(() => {
  fx?.dispose();
  fx = undefined;
});

async function discoverFake(useQmp: boolean, opened: FakeQmp[] = []) {
  fx = fakeHost();
  const connect = fakeConnect(opened);
  const started = Date.now();
  const d = await discoverHosts({
    procRoot: join(fx.root, "proc"),
    libvirtDirs: [join(fx.root, "run/libvirt/qemu")],
    useQmp,
    timeoutMs: 50,
    qmpConnect: connect,
    passwdFile: join(fx.root, "etc/passwd"),
  });
  return { d, connect, elapsed: Date.now() - started, procRoot: join(fx.root, "proc") };
}

const web01Ports = [
  hostPort({
    kind: "serial", name: "org.qemu.guest_agent.0", id: "channel0", chardev: "charchannel0", bus: "virtio-serial0.0", nr: 1,
    backend: "unix", qemuBackend: "socket", path: "/run/libvirt/qemu/channel/3-web01/org.qemu.guest_agent.0",
    mode: "connect", guestOpen: true, held: true,
  }),
  hostPort({
    kind: "serial", name: "com.redhat.spice.0", id: "channel1", chardev: "charchannel1", bus: "virtio-serial0.0", nr: 2,
    backend: "other", qemuBackend: "spicevmc", guestOpen: false,
  }),
  hostPort({
    kind: "serial", name: "org.example.data", id: "channel2", chardev: "charchannel2", bus: "virtio-serial0.0", nr: 3,
    backend: "unix", qemuBackend: "socket", path: "/srv/chan/web01 & data's.sock", mode: "connect", guestOpen: false, held: false,
  }),
  hostPort({ kind: "console", id: "console1", chardev: "charconsole1", backend: "pty", qemuBackend: "pty", path: "/dev/pts/5" }),
  // Hot-plugged through libvirt: only its XML knows them.
  hostPort({
    kind: "serial", name: "org.example.hotpty", id: "ua-hotpty", chardev: "charua-hotpty", bus: "virtio-serial0.0", nr: 4,
    backend: "pty", qemuBackend: "pty",
  }),
  hostPort({
    kind: "serial", name: "org.example.push", id: "ua-push", chardev: "charua-push", bus: "virtio-serial0.0", nr: 5,
    backend: "unix", qemuBackend: "socket", path: "/run/collector.sock", mode: "listen", reconnectMs: 5000,
  }),
];

describe("discoverHosts", () => {
  test("merges command lines, /proc sockets, libvirt XML and QMP into exact VM models", async () => {
    const opened: FakeQmp[] = [];
    const { d, connect, procRoot } = await discoverFake(true, opened);
    expect(HostDiscovery.parse(d)).toEqual(d);
    expect(d.vms.map((v) => [v.name, v.pid, v.sources])).toEqual([
      ["held", 6000, ["cmdline"]],
      ["lab,one", 4242, ["cmdline", "qmp"]],
      ["stalls", 6001, ["cmdline"]],
      ["web01", 5151, ["cmdline", "libvirt"]],
    ]);
    const lab = d.vms[1]!;
    expect(lab).toEqual({
      name: "lab,one",
      pid: 4242,
      uuid: "6f9619ff-8b86-d011-b42d-00c04fc964ff",
      owner: { uid: 64055, user: "libvirt-qemu" },
      sources: ["cmdline", "qmp"],
      qmp: ["/run/vm/lab,one/qmp.sock"],
      startedPaused: true,
      running: false,
      // QOM order; "log.port" was unplugged, "org.example.hot" hot-plugged.
      ports: [
        hostPort({
          kind: "serial", name: "org.example.a", id: "pa", chardev: "c1", bus: "vs0.0", nr: 3,
          backend: "unix", qemuBackend: "socket", path: "/run/vm/a.sock", mode: "connect", guestOpen: false, held: true,
        }),
        hostPort({
          kind: "console", name: "con0", id: "pc", chardev: "c2", bus: "vs0.0", nr: 0,
          backend: "unix", qemuBackend: "socket", path: "/run/vm/b,c.sock", mode: "connect", guestOpen: null, held: false,
        }),
        hostPort({
          kind: "serial", name: "tcp.port", id: "tp", chardev: "c4", bus: "vs0.0", nr: 2,
          backend: "tcp", qemuBackend: "socket", address: "127.0.0.1:4555", mode: "connect", guestOpen: true, held: false,
        }),
        hostPort({
          kind: "serial", name: "pty.port", id: "ptyp", chardev: "c5", bus: "vs0.0", nr: 4,
          backend: "pty", qemuBackend: "pty", path: "/dev/pts/7", guestOpen: false,
        }),
        hostPort({
          kind: "serial", name: "rel.port", id: "relp", chardev: "c7", bus: "vs0.0", nr: 7,
          backend: "unix", qemuBackend: "socket", path: "/srv/vms/rel/listen.sock", mode: "listen", reconnectMs: 250,
          guestOpen: false, held: false,
        }),
        hostPort({ kind: "serial", name: "no.chardev", id: "nc", bus: "vs0.0", nr: 8 }),
        hostPort({
          kind: "serial", name: "org.example.hot", id: "hp", chardev: "hpc", bus: "vs0.0", nr: 5,
          backend: "unix", qemuBackend: "socket", path: "/run/vm/hot.sock", mode: "connect", guestOpen: false, held: false,
        }),
        hostPort({
          kind: "serial", name: "weird,name", chardev: "c3", bus: "vs0.0", nr: 1,
          backend: "unix", qemuBackend: "socket", path: "/run/vm/client.sock", mode: "listen", reconnectMs: 2000,
          guestOpen: false, held: true,
        }),
      ],
    });
    const web01 = d.vms[3]!;
    expect(web01.uuid).toBe("0b4fa8c2-1d5e-4b8a-9f3e-2c7d9e6a5b10");
    // libvirt's monitor (fd 30) is left out: libvirt holds it, a connect would only wait for a greeting.
    expect(web01.qmp).toEqual([]);
    expect(web01.ports).toEqual(web01Ports);
    expect(d.vms[0]!.qmp).toEqual(["/run/vm/held-qmp.sock"]);

    expect(connect.paths.sort()).toEqual(["/run/vm/held-qmp.sock", "/run/vm/lab,one/qmp.sock", "/run/vm/stall.sock"]);
    expect(opened.map((q) => q.closed)).toEqual([true]);
    expect(opened[0]!.calls.slice(0, 4)).toEqual([
      "query-status",
      "query-chardev",
      'qom-list {"path":"/machine/peripheral"}',
      'qom-get {"path":"/machine/peripheral/pa","property":"name"}',
    ]);
    expect(d.notes).toEqual([
      `cannot read ${procRoot}/99/cmdline: EISDIR: illegal operation on a directory, read`,
      'VM "lab,one" (pid 4242): cannot follow -readconfig /etc/qemu/extra.cfg: devices and chardevs in config files are not read',
      'cannot query QMP of VM "held" (pid 6000) at /run/vm/held-qmp.sock: no greeting within 50 ms (QMP serves one client at a time: another one, such as libvirt, holds it)',
      'cannot query QMP of VM "stalls" (pid 6001) at /run/vm/stall.sock: no answer within 50 ms',
    ]);
  });

  test("without QMP the ports come from the command line, /proc and libvirt, and nothing is connected to", async () => {
    const { d, connect } = await discoverFake(false);
    expect(connect.paths).toEqual([]);
    const lab = d.vms.find((v) => v.pid === 4242)!;
    expect([lab.sources, lab.running]).toEqual([["cmdline"], null]);
    expect(lab.ports.map((p) => [p.name, p.path, p.guestOpen, p.held])).toEqual([
      ["org.example.a", "/run/vm/a.sock", null, true], // QEMU holds an accepted connection on a.sock
      ["con0", "/run/vm/b,c.sock", null, false],
      ["weird,name", "/run/vm/client.sock", null, null], // client mode: /proc cannot tell
      ["tcp.port", null, null, null],
      ["pty.port", null, null, null],
      ["log.port", null, null, null],
      ["rel.port", "/srv/vms/rel/listen.sock", null, null],
      ["no.chardev", null, null, null],
    ]);
    expect(d.vms.find((v) => v.name === "web01")!.ports).toEqual(web01Ports);
    expect(d.notes.filter((n) => n.includes("QMP"))).toEqual([]);
  });

  test("a stalled QMP socket does not hold discovery up", async () => {
    const { elapsed } = await discoverFake(true);
    // 2 x timeoutMs (100 ms) for the stalled connect, plus the file work: about 150 ms idle. A discovery that waited
    // on the stalled socket would never return; 10 s is far from both, also on a loaded machine.
    expect(elapsed, `discovery took ${elapsed} ms`).toBeLessThan(10_000);
  });

  test("a filter keeps other VMs' QMP sockets untouched", async () => {
    fx = fakeHost();
    const connect = fakeConnect([]);
    const d = await discoverHosts({
      procRoot: join(fx.root, "proc"),
      libvirtDirs: [],
      timeoutMs: 50,
      qmpConnect: connect,
      filter: (vm) => vm.name === "lab,one",
    });
    expect(d.vms.map((v) => v.pid)).toEqual([4242]);
    expect(connect.paths).toEqual(["/run/vm/lab,one/qmp.sock"]);
  });

  test("a domain libvirt knows but /proc does not show is still listed", async () => {
    fx = new FixtureRoot().file("/run/libvirt/qemu/web01.xml", fixtureText("web01.xml")).dir("/proc");
    const d = await discoverHosts({ procRoot: join(fx.root, "proc"), libvirtDirs: [join(fx.root, "run/libvirt/qemu")], useQmp: true, qmpConnect: fakeConnect([]) });
    expect(d.vms.map((v) => [v.name, v.pid, v.sources, v.qmp])).toEqual([["web01", 5151, ["libvirt"], []]]);
    expect(d.notes).toEqual([]);
  });

  test("an unreadable /proc/PID/fd is noted when fd-passed socket paths depend on it", async () => {
    fx = new FixtureRoot().file("/proc/5151/cmdline", argv("libvirt.argv").join("\0") + "\0");
    const procRoot = join(fx.root, "proc");
    const d = await discoverHosts({ procRoot, libvirtDirs: [], useQmp: false });
    expect(d.vms[0]!.ports.map((p) => [p.name, p.backend, p.path])).toEqual([
      ["org.qemu.guest_agent.0", "fd", null],
      ["com.redhat.spice.0", "other", null],
      ["org.example.data", "fd", null],
      [null, "pty", null],
    ]);
    expect(d.notes).toEqual([
      `cannot read ${procRoot}/5151/fd: no such file or directory (socket paths of VM "web01" (pid 5151) passed as fds unknown)`,
    ]);
  });
});

describe("QMP helpers", () => {
  test("query-chardev filenames give connection, path and mode, commas in paths kept", () => {
    expect(parseChardevFilename("disconnected:unix:/tmp/b,c.sock,server=on")).toEqual({
      connected: false, backend: "unix", path: "/tmp/b,c.sock", address: null, mode: "connect",
    });
    expect(parseChardevFilename("unix:/tmp/a.sock,server=on").connected).toBe(true);
    // Client mode shows the path only while disconnected.
    expect(parseChardevFilename("unix:")).toEqual({ connected: true, backend: "unix", path: null, address: null, mode: "listen" });
    expect(parseChardevFilename("pty:/dev/pts/3")).toEqual({ connected: false, backend: "pty", path: "/dev/pts/3", address: null, mode: null });
    expect(parseChardevFilename("spicevmc").backend).toBe("other");
  });

  test("a QOM listing that fails keeps the command-line ports and still applies chardev state", () => {
    const vm = {
      name: "x", pid: 1, uuid: null, sources: ["cmdline" as const], qmp: [], startedPaused: false, running: null,
      ports: [hostPort({ kind: "serial", name: "a", chardev: "c", backend: "fd", qemuBackend: "socket", mode: "connect" })],
    };
    const out = applyQmpView(vm, {
      running: true,
      devices: null,
      chardevs: new Map([["c", { filename: "disconnected:unix:/run/a.sock,server=on", frontendOpen: true }]]),
    });
    expect(out.sources).toEqual(["cmdline", "qmp"]);
    expect(out.running).toBe(true);
    expect(out.ports).toEqual([
      hostPort({
        kind: "serial", name: "a", chardev: "c", backend: "unix", qemuBackend: "socket", path: "/run/a.sock", mode: "connect",
        guestOpen: true, held: false,
      }),
    ]);
  });

  test("/proc/net/unix rows keep paths with spaces, mark listeners and keep unnamed sockets", () => {
    expect(parseProcNetUnix(netUnix([[7, 1, true, "/a b/c"], [8, 3, false, "@abstract"]]) + "0000: 00000002 00000000 00000000 0001 03 9\n")).toEqual([
      { inode: 7, state: "listen", path: "/a b/c", peer: null, vfs: null, uid: null },
      { inode: 8, state: "connected", path: "@abstract", peer: null, vfs: null, uid: null },
      { inode: 9, state: "connected", path: null, peer: null, vfs: null, uid: null },
    ]);
  });

  test("OS errors read as words in notes", () => {
    expect(describeError(Object.assign(new Error("x"), { code: "EACCES" }))).toBe("permission denied");
    expect(describeError(new Error("something else"))).toBe("something else");
  });
});

describe("resolveVmPort", () => {
  const vm = (name: string | null, pid: number, ports: string[], uuid: string | null = null) => ({
    name, pid, uuid, sources: ["cmdline" as const], qmp: [], startedPaused: false, running: null,
    ports: ports.map((n) => hostPort({ kind: "serial", name: n, id: `id-${n}` })),
  });
  const d: Discovery = {
    vms: [
      vm("web01", 10, ["org.qemu.guest_agent.0", "org.example.data"], "0b4fa8c2-1d5e-4b8a-9f3e-2c7d9e6a5b10"),
      vm("db", 20, []),
      vm("twin", 30, ["a"]),
      vm("twin", 31, ["a"]),
      vm(null, 40, ["x"]),
    ],
    notes: [],
  };
  const fail = (v: string, p: string, discovery = d): VmchanError => {
    try {
      resolveVmPort(discovery, v, p);
    } catch (err) {
      if (err instanceof VmchanError) return err;
      throw err;
    }
    throw new Error("expected an error");
  };

  test("finds a port by VM name, pid or uuid, and by port name or device id", () => {
    expect(resolveVmPort(d, "web01", "org.example.data").port.name).toBe("org.example.data");
    expect(resolveVmPort(d, "40", "x").vm.pid).toBe(40);
    expect(resolveVmPort(d, "0B4FA8C2-1D5E-4B8A-9F3E-2C7D9E6A5B10", "org.example.data").vm.name).toBe("web01");
    expect(resolveVmPort(d, "web01", "id-org.example.data").port.name).toBe("org.example.data");
    expect(resolveVmPort(d, "31", "a").vm.pid).toBe(31);
  });

  test("an unknown VM lists the VMs with a did-you-mean", () => {
    const e = fail("web1", "x");
    expect([e.message, e.hint, e.code]).toEqual([
      'no VM named "web1": running VMs are "web01", "db", "twin", "twin", pid 40',
      'did you mean "web01"? see \'vmchan ports list\'',
      ExitCode.notFound,
    ]);
    expect(fail("x", "y", { vms: [], notes: ["cannot read /proc/9/cmdline: permission denied"] }).message).toBe(
      'no VM named "x": no running QEMU VM was found (some sources could not be read: run as root to see every VM)',
    );
  });

  test("an unknown port lists the VM's ports with a did-you-mean", () => {
    const e = fail("web01", "org.qemu.guest_agent");
    expect([e.message, e.hint, e.code]).toEqual([
      'no port named "org.qemu.guest_agent" in VM "web01": it has "org.qemu.guest_agent.0", "org.example.data"',
      'did you mean "org.qemu.guest_agent.0"? see \'vmchan ports list\'',
      ExitCode.notFound,
    ]);
    expect(fail("db", "a").message).toBe('no port named "a" in VM "db": it has no virtio-serial ports');
  });

  test("a name two VMs share is ambiguous, naming their pids", () => {
    const e = fail("twin", "a");
    expect([e.message, e.hint, e.code]).toEqual([
      'VM name "twin" is ambiguous: it matches pid 30 "twin" (matches its name); pid 31 "twin" (matches its name)',
      `pick one with pid:PID:PORT, e.g. "pid:30:PORT", uuid:UUID:PORT or name:NAME:PORT; see 'vmchan ports list'`,
      ExitCode.usage,
    ]);
  });
});
