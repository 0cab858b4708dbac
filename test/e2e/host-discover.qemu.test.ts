import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { chmodSync, chownSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { discoverHosts } from "../../lib/host/discover.ts";
import { resolveVmPort } from "../../lib/host/resolve-vm-port.ts";
import { hostPort, type HostDiscovery, type HostVm } from "../../lib/host/model.ts";
import { unixListening } from "../support/proc-stats.ts";

// Real QEMUs with no guest at all (-S, no kernel): enough for QEMU's own view of its ports.
const dir = mkdtempSync(join(tmpdir(), "vmchan-qemu-"));
const path = (name: string) => join(dir, name);

/** A QEMU we started; `stderr` fills in when it exits (for failure messages). */
interface Qemu {
  proc: ReturnType<typeof Bun.spawn>;
  stderr: string;
}
const qemus: Qemu[] = [];
const clients: net.Socket[] = [];
const servers: net.Server[] = [];

// Last resort if the runner exits before afterAll: never leave a QEMU behind.
const killAll = () => qemus.forEach((q) => q.proc.exitCode === null && q.proc.kill("SIGKILL"));
process.once("exit", killAll);

function startQemu(args: string[], extraFds: number[] = [], asUser: string[] = []): Qemu {
  const proc = Bun.spawn([...asUser, "qemu-system-x86_64", "-accel", "tcg", "-S", "-display", "none", "-nodefaults", ...args], {
    // Extra entries become the child's fds 3, 4, ...: how libvirt hands QEMU pre-opened sockets.
    stdio: ["ignore", "ignore", "pipe", ...extraFds],
  });
  const q: Qemu = { proc, stderr: "" };
  void new Response(proc.stderr as ReadableStream).text().then((t) => (q.stderr = t));
  qemus.push(q);
  return q;
}

/** Another local user, as the tests run as root: nobody, with no supplementary groups. */
const asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

/** Polls `check` every 50 ms until it returns a value, or fails after `ms` saying what it waited for. */
async function until<T>(q: Qemu, what: string, ms: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (q.proc.exitCode !== null) throw new Error(`QEMU exited (${q.proc.exitCode}) while waiting for ${what}: ${q.stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

const socketsExist = (q: Qemu, paths: string[]) =>
  until(q, `sockets ${paths.join(", ")}`, 10_000, () => (paths.every((p) => unixListening(p)) ? true : undefined));

/** A VM in a fresh discovery; other QEMUs on this machine (other tests' labs) are filtered out, so their QMP is not touched. */
async function discoverVm(q: Qemu, opts: { useQmp?: boolean } = {}): Promise<{ d: HostDiscovery; vm: HostVm }> {
  const d = await discoverHosts({ libvirtDirs: [], timeoutMs: 2000, filter: (v) => v.pid === q.proc.pid, ...opts });
  const vm = d.vms.find((v) => v.pid === q.proc.pid);
  if (!vm) throw new Error(`QEMU pid ${q.proc.pid} not discovered (exit code ${q.proc.exitCode}, stderr ${JSON.stringify(q.stderr)}); notes: ${d.notes.join("; ")}`);
  return { d, vm };
}

// A listening unix socket as a bare fd, to hand to QEMU the way libvirt does (node:net does not expose fds).
const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
});
function listeningUnixFd(p: string): number {
  const fd = libc.symbols.socket(1 /* AF_UNIX */, 1 /* SOCK_STREAM */, 0);
  const addr = new Uint8Array(110); // struct sockaddr_un
  new DataView(addr.buffer).setUint16(0, 1, true);
  const bytes = new TextEncoder().encode(p);
  addr.set(bytes, 2);
  if (fd < 0 || libc.symbols.bind(fd, ptr(addr), 2 + bytes.length + 1) !== 0 || libc.symbols.listen(fd, 4) !== 0) {
    throw new Error(`cannot listen on ${p}`);
  }
  return fd;
}

let plain: Qemu;
let libvirtLike: Qemu;

beforeAll(async () => {
  plain = startQemu([
    "-name", "testvm",
    "-qmp", `unix:${path("qmp.sock")},server=on,wait=off`,
    "-device", "virtio-serial-pci,id=vs0",
    "-chardev", `socket,id=c1,path=${path("a.sock")},server=on,wait=off`,
    "-device", "virtserialport,bus=vs0.0,chardev=c1,name=org.example.a,id=pa",
    "-chardev", `socket,id=c2,path=${path("b,c.sock").replaceAll(",", ",,")},server=on,wait=off`,
    "-device", "virtconsole,chardev=c2,name=con0,id=pc",
  ]);

  // What libvirt does: monitor and channel sockets opened beforehand and passed as fds, JSON -device,
  // guest=NAME; plus a client-mode chardev that connects to a listener of ours, and the old flag syntax.
  const monFd = listeningUnixFd(path("mon.sock"));
  const chanFd = listeningUnixFd(path("agent.sock"));
  const listener = net.createServer((c) => clients.push(c));
  servers.push(listener);
  await new Promise<void>((resolve) => listener.listen(path("collector.sock"), resolve));
  libvirtLike = startQemu(
    [
      "-name", "guest=lib,,vm,debug-threads=on",
      "-chardev", "socket,id=charmonitor,fd=3,server=on,wait=off",
      "-mon", "chardev=charmonitor,id=monitor,mode=control",
      "-device", '{"driver":"virtio-serial-pci","id":"virtio-serial0"}',
      "-chardev", "socket,id=charchannel0,fd=4,server=on,wait=off",
      "-device", '{"driver":"virtserialport","bus":"virtio-serial0.0","nr":1,"chardev":"charchannel0","id":"channel0","name":"org.qemu.guest_agent.0"}',
      "-chardev", `socket,id=charchannel1,path=${path("collector.sock")},reconnect=1`,
      "-device", '{"driver":"virtserialport","bus":"virtio-serial0.0","nr":2,"chardev":"charchannel1","id":"channel1","name":"org.example.push"}',
      // QEMU 7.2 creates all QemuOpts devices before the JSON ones, so this port needs a bus of its own syntax.
      "-device", "virtio-serial-pci,id=vs1",
      "-chardev", `socket,id=old,path=${path("old.sock")},server,nowait`,
      "-device", "virtserialport,chardev=old,name=old.port",
    ],
    [monFd, chanFd],
  );
  // QEMU has its own copies now.
  libc.symbols.close(monFd);
  libc.symbols.close(chanFd);

  await socketsExist(plain, [path("qmp.sock"), path("a.sock"), path("b,c.sock")]);
  await socketsExist(libvirtLike, [path("old.sock")]);
  await until(libvirtLike, "QEMU to connect to our listener", 10_000, () => (clients.length > 0 ? true : undefined));
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const s of servers) s.close();
  await Promise.all(
    qemus.map(async ({ proc }) => {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
      if (!exited) {
        proc.kill("SIGKILL");
        await Promise.race([proc.exited, Bun.sleep(3000)]);
      }
    }),
  );
  process.removeListener("exit", killAll);
  rmSync(dir, { recursive: true, force: true });
}, 15_000);

describe("host discovery against a real QEMU", () => {
  test("finds the VM, its ports, paths with the comma unescaped, and QMP state", async () => {
    const { vm } = await discoverVm(plain);
    expect(vm).toEqual({
      name: "testvm",
      pid: plain.proc.pid,
      uuid: null,
      owner: { uid: 0, user: "root" },
      sources: ["cmdline", "qmp"],
      qmp: [path("qmp.sock")],
      startedPaused: true,
      running: false,
      ports: [
        hostPort({
          kind: "serial", name: "org.example.a", id: "pa", chardev: "c1", bus: "vs0.0", nr: 1,
          backend: "unix", qemuBackend: "socket", path: path("a.sock"), mode: "connect", guestOpen: false, held: false,
        }),
        // QMP says frontend-open=true for the console although no guest runs: guestOpen stays null.
        hostPort({
          kind: "console", name: "con0", id: "pc", chardev: "c2", bus: "vs0.0", nr: 0,
          backend: "unix", qemuBackend: "socket", path: path("b,c.sock"), mode: "connect", guestOpen: null, held: false,
        }),
      ],
    });
  }, 10_000);

  test("discovery leaves the QMP socket free for the next client", async () => {
    await discoverVm(plain);
    const { vm, d } = await discoverVm(plain);
    expect(vm.sources).toContain("qmp");
    expect(d.notes).toEqual([]);
  }, 10_000);

  test("a client connected to a port's socket shows as held, through QMP and through /proc", async () => {
    const client = net.createConnection({ path: path("a.sock") });
    clients.push(client);
    await new Promise<void>((resolve, reject) => client.once("connect", resolve).once("error", reject));
    // QEMU accepts from its main loop: wait (bounded) until it has.
    const held = await until(plain, "QEMU to accept the client", 5000, async () => {
      const { vm } = await discoverVm(plain);
      return vm.ports[0]!.held ? vm : undefined;
    });
    expect(held.ports.map((p) => [p.name, p.held, p.guestOpen])).toEqual([
      ["org.example.a", true, false],
      ["con0", false, null],
    ]);
    const { vm: procOnly } = await discoverVm(plain, { useQmp: false });
    expect(procOnly.sources).toEqual(["cmdline"]);
    expect(procOnly.ports.map((p) => [p.name, p.held, p.guestOpen])).toEqual([
      ["org.example.a", true, null],
      ["con0", false, null],
    ]);
  }, 15_000);

  test("libvirt-style fds: socket paths and the QMP monitor come from /proc, client mode shows as held", async () => {
    const { vm, d } = await discoverVm(libvirtLike);
    expect(d.notes).toEqual([]);
    expect(vm).toEqual({
      name: "lib,vm",
      pid: libvirtLike.proc.pid,
      uuid: null,
      owner: { uid: 0, user: "root" },
      sources: ["cmdline", "qmp"],
      qmp: [path("mon.sock")],
      startedPaused: true,
      running: false,
      ports: [
        // QOM order (peripheral, then peripheral-anon), not command-line order.
        hostPort({
          kind: "serial", name: "org.example.push", id: "channel1", chardev: "charchannel1", bus: "virtio-serial0.0", nr: 2,
          backend: "unix", qemuBackend: "socket", path: path("collector.sock"), mode: "listen", reconnectMs: 1000,
          guestOpen: false, held: true,
        }),
        hostPort({
          kind: "serial", name: "org.qemu.guest_agent.0", id: "channel0", chardev: "charchannel0", bus: "virtio-serial0.0", nr: 1,
          backend: "unix", qemuBackend: "socket", path: path("agent.sock"), mode: "connect", guestOpen: false, held: false,
        }),
        hostPort({
          kind: "serial", name: "old.port", chardev: "old", bus: "vs1.0", nr: 1,
          backend: "unix", qemuBackend: "socket", path: path("old.sock"), mode: "connect", guestOpen: false, held: false,
        }),
      ],
    });
  }, 10_000);
});

/** The inode of the socket behind a process's fd, as anyone can learn it from /proc/net/unix. */
const inodeOf = (pid: number, fd: number) => Number(/socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))![1]);

/** The fd QEMU holds its listening socket for `sockPath` on (found through sock_diag's names). */
async function listenerInode(q: Qemu, sockPath: string): Promise<number> {
  const { dumpUnixSockets } = await import("../../lib/sys/sock-diag.ts");
  const s = dumpUnixSockets().find((x) => x.path === sockPath && x.state === "listen");
  if (!s) throw new Error(`no listener at ${sockPath} (QEMU pid ${q.proc.pid})`);
  return s.inode;
}

describe("other users' processes and sockets", () => {
  let evilDir: string;
  let impostor: Qemu;
  let forger: ReturnType<typeof Bun.spawn> | undefined;

  beforeAll(async () => {
    // A directory of nobody's own, under one whose name is short: forged lines must fit in sun_path.
    evilDir = mkdtempSync("/tmp/ve");
    chownSync(evilDir, 65534, 65534);
    chmodSync(evilDir, 0o755);
  });
  afterAll(async () => {
    forger?.kill("SIGKILL");
    await forger?.exited;
    rmSync(evilDir, { recursive: true, force: true });
  });

  test("a QEMU another user names after a real VM's pid makes that pid ambiguous; pid:N picks the real one", async () => {
    impostor = startQemu(
      [
        "-name", String(plain.proc.pid),
        "-device", "virtio-serial-pci,id=vs0",
        "-chardev", `socket,id=c1,path=${evilDir}/a.sock,server=on,wait=off`,
        "-device", "virtserialport,bus=vs0.0,chardev=c1,name=org.example.a,id=pa",
      ],
      [],
      asNobody,
    );
    await socketsExist(impostor, [`${evilDir}/a.sock`]);
    const d = await discoverHosts({ libvirtDirs: [], useQmp: false, filter: (v) => v.pid === plain.proc.pid || v.pid === impostor.proc.pid });
    const owners = d.vms.map((v) => [v.pid, v.name, v.owner]);
    expect(owners, `what I saw: ${JSON.stringify(owners)} notes ${d.notes.join("; ")}`).toContainEqual([impostor.proc.pid, String(plain.proc.pid), { uid: 65534, user: "nobody" }]);
    expect(owners).toContainEqual([plain.proc.pid, "testvm", { uid: 0, user: "root" }]);
    let err: unknown;
    try {
      resolveVmPort(d, String(plain.proc.pid), "org.example.a");
    } catch (e) {
      err = e;
    }
    expect(err, `what I saw: ${String(err)}`).toBeInstanceOf(VmchanError);
    const e = err as VmchanError;
    expect(e.code).toBe(ExitCode.usage);
    expect(e.message).toContain(`pid ${plain.proc.pid} "testvm" (matches its pid, user "root" (uid 0))`);
    expect(e.message).toContain(`pid ${impostor.proc.pid} "${plain.proc.pid}" (matches its name, user "nobody" (uid 65534))`);
    expect(resolveVmPort(d, "pid", `${plain.proc.pid}:org.example.a`).port.path).toBe(path("a.sock"));
    expect(resolveVmPort(d, "name", `${plain.proc.pid}:org.example.a`).port.path).toBe(`${evilDir}/a.sock`);

    // Root's send through the binary: one line and the usage code, instead of a connect to nobody's QEMU.
    const { vmchan } = await import("../support/binary.ts");
    const r = await vmchan(["send", "--data", "secret", `${plain.proc.pid}:org.example.a`]);
    expect([r.code, r.stderr.split("\n").length], `what I saw: ${r.stderr}`).toEqual([ExitCode.usage, 2]);
    expect(r.stderr).toStartWith(`vmchan: VM "${plain.proc.pid}" is ambiguous: it matches `);
    expect(r.stderr).toContain(`e.g. "pid:${plain.proc.pid}:PORT"`);
  }, 30_000);

  test("forged /proc/net/unix lines from another user neither move an fd-passed socket nor mark a free one held", async () => {
    // What the attacker learns from the world-readable /proc/net/unix: the inodes of QEMU's listeners.
    const agentInode = inodeOf(libvirtLike.proc.pid, 4);
    const consoleInode = await listenerInode(plain, path("b,c.sock"));
    const forged = [
      `${evilDir}/e\n0: 2 0 10000 1 01 ${agentInode} ${evilDir}/evil.sock`,
      `${evilDir}/f\n0: 2 0 0 1 03 ${consoleInode} ${path("b,c.sock")}`,
      `${evilDir}/g\n0: 2 0 0 1 03 987654321 ${path("b,c.sock")}`,
    ];
    const script = `
      const net = require("node:net"), fs = require("node:fs"), p = require("node:path");
      const paths = JSON.parse(process.argv[1]);
      let left = paths.length;
      for (const f of paths) {
        fs.mkdirSync(p.dirname(f), { recursive: true });
        net.createServer(() => {}).listen(f, () => { if (--left === 0) console.log("ready"); });
      }`;
    forger = Bun.spawn([...asNobody, process.execPath, "-e", script, JSON.stringify(forged)], { stdout: "pipe", stderr: "pipe" });
    const reader = (forger.stdout as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value ?? new Uint8Array()), `forger stderr: ${await (first.done ? new Response(forger.stderr as ReadableStream).text() : "")}`).toBe("ready\n");
    const text = await Bun.file("/proc/net/unix").text();
    expect(text, "the forged lines are in /proc/net/unix").toContain(` ${agentInode} ${evilDir}/evil.sock`);

    // sock_diag (the default): the true paths, nothing held, no note.
    const both = (v: HostVm) => v.pid === plain.proc.pid || v.pid === libvirtLike.proc.pid;
    const diag = await discoverHosts({ libvirtDirs: [], useQmp: false, filter: both });
    const ports = (d: HostDiscovery) =>
      d.vms.flatMap((v) => v.ports.filter((p) => p.name === "org.qemu.guest_agent.0" || p.name === "con0").map((p) => [p.name, p.backend, p.path, p.held]));
    expect(ports(diag).sort(), `notes: ${diag.notes.join("; ")}`).toEqual([
      ["con0", "unix", path("b,c.sock"), false],
      ["org.qemu.guest_agent.0", "unix", path("agent.sock"), false],
    ]);
    expect(diag.notes).toEqual([]);

    // Without sock_diag, /proc/PID/net/unix with duplicated inodes refused: unknown, and said so, never the attacker's path.
    const text2 = await discoverHosts({
      libvirtDirs: [], useQmp: false, filter: both,
      socketLookup: () => {
        throw new Error("sock_diag unavailable");
      },
    });
    const agent = text2.vms.flatMap((v) => v.ports).find((p) => p.name === "org.qemu.guest_agent.0")!;
    const con0 = text2.vms.flatMap((v) => v.ports).find((p) => p.name === "con0")!;
    // con0's listener is one of the forged inodes: held is unknown there (null), never "held".
    expect([agent.backend, agent.path, con0.held]).toEqual(["fd", null, null]);
    const note = text2.notes.find((n) => n.includes(`(pid ${libvirtLike.proc.pid})`));
    expect(note, `notes: ${text2.notes.join("; ")}`).toBe(
      `VM "lib,vm" (pid ${libvirtLike.proc.pid}): fd 4 is a socket whose inode appears on several lines of /proc/${libvirtLike.proc.pid}/net/unix (a socket path with a newline in it forges lines): its path and state are unknown`,
    );
    expect(JSON.stringify(text2)).not.toContain("evil.sock");
  }, 30_000);

  test("a VM socket another user replaced in a directory it can write is refused before a byte is sent", async () => {
    // Root's VM, its socket in a directory nobody may write (a shared or carelessly chosen directory).
    const shared = mkdtempSync("/tmp/vs");
    chownSync(shared, 65534, 65534);
    const sock = `${shared}/port.sock`;
    const vm = startQemu([
      "-name", "replaced",
      "-device", "virtio-serial-pci,id=vs0",
      "-chardev", `socket,id=c1,path=${sock},server=on,wait=off`,
      "-device", "virtserialport,bus=vs0.0,chardev=c1,name=org.example.r,id=pr",
    ]);
    let thief: ReturnType<typeof Bun.spawn> | undefined;
    try {
      await socketsExist(vm, [sock]);
      // nobody swaps the file for a socket of its own, and counts what arrives.
      const script = `
        const net = require("node:net"), fs = require("node:fs");
        fs.unlinkSync(process.argv[1]);
        let n = 0;
        const srv = net.createServer((c) => c.on("data", (b) => (n += b.length)).on("close", () => console.log("got " + n)));
        srv.listen(process.argv[1], () => console.log("ready"));`;
      thief = Bun.spawn([...asNobody, process.execPath, "-e", script, sock], { stdout: "pipe", stderr: "pipe" });
      const out = (thief.stdout as ReadableStream<Uint8Array>).getReader();
      const first = await out.read();
      expect(new TextDecoder().decode(first.value ?? new Uint8Array()), "nobody's listener").toBe("ready\n");

      const { d } = await discoverVm(vm, { useQmp: false });
      const port = d.vms[0]!.ports[0]!;
      expect(port.untrusted, `notes: ${d.notes.join("; ")}`).toBe(
        `the socket file at ${sock} is not one QEMU listens on (it was replaced, or another process made it)`,
      );
      const { vmchan } = await import("../support/binary.ts");
      const r = await vmchan(["send", "--data", "secret", `pid:${vm.proc.pid}:org.example.r`]);
      expect([r.code, r.stderr], `what I saw: ${r.stderr}`).toEqual([
        ExitCode.untrusted,
        `vmchan: refusing "pid:${vm.proc.pid}:org.example.r": the socket file at ${sock} is not one QEMU listens on (it was replaced, or another process made it) (hint: if you trust that socket anyway, connect to it as 'unix:${sock}')\n`,
      ]);
      thief.kill("SIGTERM");
      const rest = await out.read();
      // The thief printed nothing more: no connection ever reached it.
      expect(rest.value === undefined ? "" : new TextDecoder().decode(rest.value)).toBe("");
    } finally {
      thief?.kill("SIGKILL");
      await thief?.exited;
      rmSync(shared, { recursive: true, force: true });
    }
  }, 30_000);
});

// Last: connecting leaves QEMU to notice the close in its own time, which other tests' held checks must not race.
describe("VM:NAME against real QEMUs", () => {
  test("resolves to QEMU's socket with the owner to check, and the connection passes that check", async () => {
    const { hostTargetResolver } = await import("../../lib/host/resolve-vm.ts");
    const { SocketChannel } = await import("../../lib/host/socket-channel.ts");
    const resolve = hostTargetResolver({ libvirtDirs: [], warn: () => {} });
    for (const [q, port, sock] of [
      [plain, "con0", path("b,c.sock")],
      [libvirtLike, "org.qemu.guest_agent.0", path("agent.sock")], // listen() was ours, as libvirtd's would be
    ] as const) {
      const target = await resolve("pid", `${q.proc.pid}:${port}`);
      expect(target).toMatchObject({ path: sock, held: false, peerUids: [0] });
      const ch = await SocketChannel.connect(target.path, port, { ...target, lingerMs: 0 });
      await ch.close();
    }
  }, 30_000);

  test("one service user for two VMs: a socket of that user swapped in after discovery is refused; the VM's own passes", async () => {
    const { hostTargetResolver } = await import("../../lib/host/resolve-vm.ts");
    const { SocketChannel } = await import("../../lib/host/socket-channel.ts");
    const dir = mkdtempSync("/tmp/vu");
    chownSync(dir, 65534, 65534);
    const sock = `${dir}/b.sock`;
    const b = startQemu(
      ["-name", "svc-b", "-device", "virtio-serial-pci,id=vs0", "-chardev", `socket,id=c1,path=${sock},server=on,wait=off`, "-device", "virtserialport,bus=vs0.0,chardev=c1,name=org.example.b,id=pb"],
      [],
      asNobody,
    );
    let thief: ReturnType<typeof Bun.spawn> | undefined;
    try {
      await socketsExist(b, [sock]);
      const resolve = hostTargetResolver({ libvirtDirs: [], warn: () => {} });
      const target = await resolve("pid", `${b.proc.pid}:org.example.b`);
      expect(target, `what I saw: ${JSON.stringify(target)}`).toMatchObject({ path: sock, peerUids: [65534, 0], peerPid: b.proc.pid });
      expect(target.peerListeners.length, "QEMU's listening sockets from sock_diag").toBeGreaterThan(0);
      // QEMU's own socket passes: the listener is its pid's.
      const ok = await SocketChannel.connect(target.path, "b", { ...target, lingerMs: 0 });
      await ok.close();
      // Another process of the same user (what a compromised QEMU of another VM is) swaps the file after discovery.
      const script = `
        const net = require("node:net"), fs = require("node:fs");
        fs.unlinkSync(process.argv[1]);
        let n = 0;
        net.createServer((c) => c.on("data", (x) => (n += x.length)).on("close", () => console.log("got " + n))).listen(process.argv[1], () => console.log("ready"));`;
      thief = Bun.spawn([...asNobody, process.execPath, "-e", script, sock], { stdout: "pipe", stderr: "pipe" });
      const out = (thief.stdout as ReadableStream<Uint8Array>).getReader();
      expect(new TextDecoder().decode((await out.read()).value ?? new Uint8Array()), "the thief's listener").toBe("ready\n");
      const err = await SocketChannel.connect(target.path, "b", { ...target, lingerMs: 0 }).catch((e) => e);
      expect([err.code, err.message], `what I saw: ${err}`).toEqual([
        ExitCode.untrusted,
        `refusing "b": the socket at ${sock} was made by pid ${thief.pid} (uid 65534), not by the VM's QEMU (pid ${b.proc.pid}) or root, and not bound to a socket file it listens on`,
      ]);
      expect(new TextDecoder().decode((await out.read()).value ?? new Uint8Array()), "the refused connection carried nothing").toBe("got 0\n");
    } finally {
      thief?.kill("SIGKILL");
      await thief?.exited;
      b.proc.kill("SIGKILL");
      await b.proc.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
