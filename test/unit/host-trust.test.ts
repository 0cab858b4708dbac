import { afterEach, describe, expect, test } from "bun:test";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { dirname, join } from "node:path";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { hostPort, type HostDiscovery, type HostVm } from "../../lib/host/model.ts";
import { diagLookup, readProcSockets, tableFromProcText, tableFromSockDiag, type ListenerOf, type ProcSockets } from "../../lib/host/proc-sockets.ts";
import { hostTargetResolver } from "../../lib/host/resolve-vm.ts";
import { resolveVmPort } from "../../lib/host/resolve-vm-port.ts";
import { unixSocketHeld } from "../../lib/host/unix-held.ts";
import { socketDistrust } from "../../lib/host/vm-owner.ts";
import type { QmpConnect } from "../../lib/host/qmp-state.ts";
import { portsList } from "../../lib/ports-list.ts";
import { decodeDiagMessages, dumpUnixSockets, type DiagUnixSocket } from "../../lib/sys/sock-diag.ts";
import { runCommand } from "../support/context.ts";
import { FixtureRoot } from "../support/fixture.ts";
import { closeFd, listeningUnixFd, socketInode } from "../support/unix-fd.ts";

// Short directories: a forged line has to fit in the 107 bytes of sun_path together with its prefix.
const dirs: string[] = [];
const fds: number[] = [];
const servers: net.Server[] = [];
const clients: net.Socket[] = [];
let fx: FixtureRoot | undefined;
function shortDir(): string {
  const d = mkdtempSync("/tmp/vt");
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) s.close();
  for (const fd of fds.splice(0)) closeFd(fd);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  fx?.dispose();
  fx = undefined;
});

/**
 * nobody's server at `path`: says "ready" when it listens, and how many bytes each connection
 * brought when it closes ("closed N"). Needs root and setpriv (util-linux), as CI has.
 */
function nobodyServer(path: string) {
  const script = `
    const net = require("node:net");
    net.createServer((c) => { let n = 0; c.on("data", (b) => (n += b.length)); c.on("close", () => console.log("closed " + n)); })
      .listen(process.argv[1], () => console.log("ready"));`;
  const child = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", script, path], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines = (async function* () {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
      buf += dec.decode(chunk);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        yield buf.slice(0, i);
        buf = buf.slice(i + 1);
      }
    }
  })();
  return { child, lines };
}

/** Listens on `path`, making the directories a forged line's slashes imply, as an attacker would. */
function listen(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  const fd = listeningUnixFd(path);
  fds.push(fd);
  return fd;
}

/** A /proc/net/unix line as the kernel prints it, which a socket path can carry after a newline. */
const line = (inode: number, st: "01" | "03", listening: boolean, path: string) =>
  `0000000000000000: 00000002 00000000 ${listening ? "00010000" : "00000000"} 0001 ${st} ${inode} ${path}`;
/** The same line squeezed (the parser accepts short fields), for paths near the sun_path limit. */
const shortLine = (inode: number, st: "01" | "03", listening: boolean, path: string) =>
  `0: 2 0 ${listening ? "10000" : "0"} 1 ${st} ${inode} ${path}`;

async function until<T>(what: string, check: () => T | null | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe("forged /proc/net/unix lines", () => {
  test("a socket path with a newline and another socket's inode does not rename that socket", () => {
    const dir = shortDir();
    const vmFd = listen(join(dir, "vm.sock"));
    const vmInode = socketInode(vmFd);
    const evil = `${dir}/e\n${line(vmInode, "01", true, `${dir}/evil.sock`)}`;
    listen(evil);
    const text = readFileSync("/proc/net/unix", "utf8");
    expect(text, `what I saw: ${text}`).toContain(`${vmInode} ${dir}/evil.sock`); // the forgery is there

    // sock_diag: names are bytes with a length, so the whole path is one socket's name.
    const dump = dumpUnixSockets();
    const mine = dump.filter((s) => s.path?.startsWith(dir)).map((s) => [s.inode === vmInode, s.path, s.state]);
    expect(mine.sort(), `what I saw: ${JSON.stringify(mine)}`).toEqual([
      [false, evil, "listen"],
      [true, join(dir, "vm.sock"), "listen"],
    ].sort());
    const viaDiag = readProcSockets("/proc", process.pid, { lookup: diagLookup });
    expect([viaDiag.source, viaDiag.pathByFd.get(vmFd), viaDiag.forgedFds]).toEqual(["sock_diag", join(dir, "vm.sock"), []]);

    // The text fallback: the inode is on two lines, so it is unknown, never the attacker's path.
    const table = tableFromProcText(text, "/proc/net/unix");
    expect(table.forged.has(vmInode)).toBe(true);
    expect(table.byInode.get(vmInode)).toBeUndefined();
    const viaText = readProcSockets("/proc", process.pid);
    expect([viaText.pathByFd.get(vmFd), viaText.forgedFds.includes(vmFd)], `what I saw: ${JSON.stringify([...viaText.pathByFd])}`).toEqual([
      undefined,
      true,
    ]);
  });

  test("a forged line may come first, use short fields, or pose as an accepted connection: still not believed", () => {
    const dir = shortDir();
    const vmFd = listen(join(dir, "v"));
    const vmInode = socketInode(vmFd);
    // A connected-looking line for the VM's own inode, and one for an inode nobody has.
    listen(`${dir}/a\n${shortLine(vmInode, "03", false, join(dir, "v"))}`);
    listen(`${dir}/b\n${shortLine(4_000_000_000, "03", false, join(dir, "v"))}\n${shortLine(vmInode, "01", true, "/x")}`);
    const viaDiag = readProcSockets("/proc", process.pid, { lookup: diagLookup });
    expect([viaDiag.pathByFd.get(vmFd), [...viaDiag.connected].filter((p) => p.startsWith(dir))]).toEqual([join(dir, "v"), []]);
    const viaText = readProcSockets("/proc", process.pid);
    expect(viaText.pathByFd.get(vmFd)).toBeUndefined();
    expect([...viaText.connected].filter((p) => p.startsWith(dir))).toEqual([]);
  });

  test("a forged connected line does not make a free socket look held", async () => {
    const dir = shortDir();
    const path = join(dir, "h.sock");
    const srv = net.createServer((c) => clients.push(c));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(path, r));
    const listener = dumpUnixSockets().find((s) => s.path === path && s.state === "listen");
    expect(listener, "the listener in sock_diag").toBeDefined();
    listen(`${dir}/f\n${shortLine(listener!.inode, "03", false, path)}`);
    listen(`${dir}/g\n${shortLine(123456789, "03", false, path)}`);
    expect(unixSocketHeld(path)).toBe(false);
    // The text fallback cannot tell which of the listener's two lines is true: unknown, not held.
    const text = tableFromProcText(readFileSync("/proc/net/unix", "utf8"), "/proc/net/unix");
    expect(unixSocketHeld(path, text)).toBeNull();
    // A real client is still seen.
    const c = net.connect(path);
    clients.push(c);
    const held = await until("the server to accept", () => (unixSocketHeld(path) ? true : null));
    expect(held).toBe(true);
  });

  test("a socket of the same name bound elsewhere (another mount namespace) does not count for held", async () => {
    // On a disk and on a tmpfs (whose device is anonymous, major 0, like btrfs's): same name, same inode number, another device.
    for (const base of [shortDir(), mkdtempSync("/dev/shm/vt")]) {
      dirs.push(base);
      const path = join(base, "m.sock");
      const srv = net.createServer((c) => clients.push(c));
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(path, r));
      const ino = Number(BigInt(require("node:fs").statSync(path, { bigint: true }).ino) & 0xffffffffn);
      const real = tableFromSockDiag();
      const listener = real.sockets.find((s) => s.path === path && s.state === "listen")!;
      for (const dev of [12345, 0x2f, listener.vfs!.dev + 1]) {
        // What sock_diag would show for a same-named socket file elsewhere (an unshare -Urm tmpfs), accepted and connected.
        const fake: DiagUnixSocket = { inode: 1, state: "connected", path, peer: 2, vfs: { dev, ino }, uid: 65534 };
        expect(unixSocketHeld(path, { ...real, sockets: [...real.sockets, fake] }), `${path}, fake dev ${dev}, real vfs ${JSON.stringify(listener.vfs)}`).toBe(false);
      }
      // The real connection on the real file still counts.
      const same: DiagUnixSocket = { inode: 1, state: "connected", path, peer: 2, vfs: listener.vfs, uid: 0 };
      expect(unixSocketHeld(path, { ...real, sockets: [...real.sockets, same] })).toBe(true);
    }
  });
});

describe("/proc/net/unix text", () => {
  test("a path that was not UTF-8 (read back with U+FFFD) is no path at all", async () => {
    const { parseProcNetUnix } = await import("../../lib/host/proc-sockets.ts");
    const text = `Num RefCount Protocol Flags Type St Inode Path\n${line(5, "01", true, "/run/a\uFFFDb")}\n${line(6, "01", true, "/run/ab")}\n`;
    expect(parseProcNetUnix(text).map((e) => [e.inode, e.path])).toEqual([[5, null], [6, "/run/ab"]]);
  });

  test("a relative name (bound against its creator's working directory) is no path either", async () => {
    const { parseProcNetUnix } = await import("../../lib/host/proc-sockets.ts");
    const text = ["Num RefCount Protocol Flags Type St Inode Path", line(7, "01", true, "run/vm.sock"), line(8, "01", true, "./x"), line(9, "01", true, "@abs"), ""].join("\n");
    expect(parseProcNetUnix(text).map((e) => [e.inode, e.path])).toEqual([[7, null], [8, null], [9, "@abs"]]);
  });
});

describe("sock_diag decoding", () => {
  /** One SOCK_DIAG_BY_FAMILY message: unix_diag_msg plus attributes. */
  const message = (inode: number, state: number, attrs: [number, Uint8Array][]): Uint8Array => {
    const body = attrs.map(([type, data]) => {
      const a = new Uint8Array((4 + data.length + 3) & ~3);
      new DataView(a.buffer).setUint16(0, 4 + data.length, true);
      new DataView(a.buffer).setUint16(2, type, true);
      a.set(data, 4);
      return a;
    });
    const len = 16 + 16 + body.reduce((n, a) => n + a.length, 0);
    const out = new Uint8Array(len);
    const v = new DataView(out.buffer);
    v.setUint32(0, len, true);
    v.setUint16(4, 20, true);
    out[16] = 1;
    out[18] = state;
    v.setUint32(20, inode, true);
    let off = 32;
    for (const a of body) {
      out.set(a, off);
      off += a.length;
    }
    return out;
  };
  const u32 = (...n: number[]) => new Uint8Array(Uint32Array.from(n).buffer);
  const done = () => {
    const d = new Uint8Array(20);
    new DataView(d.buffer).setUint32(0, 20, true);
    new DataView(d.buffer).setUint16(4, 3, true);
    return d;
  };

  test("names are taken whole, newlines and all; abstract names get an @; names no string names alone are unknown", () => {
    const out: DiagUnixSocket[] = [];
    const name = new TextEncoder().encode("/tmp/a\n0: 2 0 10000 1 01 77 /tmp/evil");
    const msgs = [
      message(77, 10, [[0, name], [1, u32(99, (254 << 20) | 1)], [7, u32(65534)]]),
      message(78, 1, [[0, Uint8Array.of(0, 0x61, 0x0a, 0x62)], [2, u32(79)]]),
      message(80, 7, [[0, Uint8Array.of(0, 0x61, 0, 0x62)]]),
      message(81, 10, [[0, Uint8Array.of(0x2f, 0x61, 0xff, 0x62)]]), // not UTF-8
      message(82, 7, [[0, Uint8Array.of(0, 0x61, 0x40, 0x62)]]), // "\0a@b": the one "@a@b"
      message(83, 10, [[0, new TextEncoder().encode("run/vm.sock")]]), // relative: bound against its creator's cwd
      message(84, 10, [[0, Uint8Array.of(0, 0x61, 0, 0)]]), // "\0a\0\0"
      message(85, 10, [[0x8000 | 0, new TextEncoder().encode("/n")], [0x4000 | 7, u32(5)]]), // NLA_F_NESTED / NET_BYTEORDER bits set

      done(),
    ];
    const buf = new Uint8Array(msgs.reduce((n, m) => n + m.length, 0));
    let off = 0;
    for (const m of msgs) {
      buf.set(m, off);
      off += m.length;
    }
    expect(decodeDiagMessages(buf, out)).toBe(true);
    expect(out).toEqual([
      { inode: 77, state: "listen", path: "/tmp/a\n0: 2 0 10000 1 01 77 /tmp/evil", peer: null, vfs: { ino: 99, dev: (254 << 8) | 1 }, uid: 65534 },
      { inode: 78, state: "connected", path: "@a\nb", peer: 79, vfs: null, uid: null },
      { inode: 80, state: "unconnected", path: null, peer: null, vfs: null, uid: null }, // "\0a\0b" would read "@a@b" too
      { inode: 81, state: "listen", path: null, peer: null, vfs: null, uid: null },
      { inode: 82, state: "unconnected", path: "@a@b", peer: null, vfs: null, uid: null },
      { inode: 83, state: "listen", path: null, peer: null, vfs: null, uid: null },
      { inode: 84, state: "listen", path: null, peer: null, vfs: null, uid: null },
      { inode: 85, state: "listen", path: "/n", peer: null, vfs: null, uid: 5 },
    ]);
  });

  /** Concatenated messages. */
  const join8 = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  };
  /** A recv hook that hands out `pieces` one per call, counting the calls. */
  const feeder = (pieces: (Uint8Array | number)[]) => {
    const calls = { n: 0 };
    const recv = (buf: Uint8Array) => {
      const p = pieces[calls.n++];
      if (p === undefined) throw new Error(`recv called ${calls.n} times, past the ${pieces.length} pieces`);
      if (typeof p === "number") return p;
      buf.set(p);
      return p.length;
    };
    return { recv, calls };
  };

  test("a dump spread over several receives is joined; EINTR is retried; it stops at NLMSG_DONE", async () => {
    const { dumpUnixSockets } = await import("../../lib/sys/sock-diag.ts");
    const { recv, calls } = feeder([
      join8(message(1, 10, [[0, new TextEncoder().encode("/a")]]), message(2, 1, [])),
      -4, // EINTR
      message(3, 10, []),
      join8(message(4, 7, []), done()),
      message(5, 10, []), // after DONE: never read
    ]);
    const out = dumpUnixSockets({ recv });
    expect([out.map((e) => e.inode), calls.n], `what I saw: ${JSON.stringify(out)}`).toEqual([[1, 2, 3, 4], 4]);
  });

  test("a dump's limits: too many sockets, too many receives, an error in NLMSG_DONE, a recv error or end of stream", async () => {
    const { dumpUnixSockets } = await import("../../lib/sys/sock-diag.ts");
    const many = feeder([join8(message(1, 10, []), message(2, 10, []), message(3, 10, [])), done()]);
    expect(() => dumpUnixSockets({ recv: many.recv, maxSockets: 2 })).toThrow("sock_diag: more than 2 unix sockets");
    const endless = feeder(Array.from({ length: 5 }, (_, i) => message(i + 1, 10, [])));
    expect(() => dumpUnixSockets({ recv: endless.recv, maxReceives: 4 })).toThrow("sock_diag: dump did not end within 4 receives");
    expect(endless.calls.n).toBe(4);
    const cut = done();
    new DataView(cut.buffer).setInt32(16, -16, true); // EBUSY: the kernel cut the dump short
    expect(() => dumpUnixSockets({ recv: feeder([message(1, 10, []), cut]).recv })).toThrow("sock_diag: dump ended with kernel error 16");
    expect(() => dumpUnixSockets({ recv: feeder([-13]).recv })).toThrow("sock_diag: recv failed: errno 13");
    expect(() => dumpUnixSockets({ recv: feeder([message(1, 10, []), 0]).recv })).toThrow("without NLMSG_DONE");
  });

  test("a dump filtered while it is read keeps only the sockets asked about: more sockets than the limit do not force a fallback", async () => {
    const { dumpUnixSockets } = await import("../../lib/sys/sock-diag.ts");
    const name = new TextEncoder().encode("/run/vm.sock");
    const pieces = Array.from({ length: 10 }, (_, i) => join8(...Array.from({ length: 10 }, (_, j) => message(i * 10 + j + 1, 10, i * 10 + j === 57 ? [[0, name]] : []))));
    const keep = (e: DiagUnixSocket) => e.path === "/run/vm.sock";
    const out = dumpUnixSockets({ recv: feeder([...pieces, done()]).recv, maxSockets: 5, keep });
    expect(out.map((e) => [e.inode, e.path])).toEqual([[58, "/run/vm.sock"]]);
    expect(() => dumpUnixSockets({ recv: feeder([...pieces, done()]).recv, maxSockets: 5 })).toThrow("more than 5 unix sockets");
  });

  test("a netlink message shorter than its header, or with a length below 16, throws", () => {
    const short = message(1, 10, []);
    new DataView(short.buffer).setUint32(0, 15, true);
    expect(() => decodeDiagMessages(short, [])).toThrow("sock_diag: malformed netlink message (length 15)");
    const zero = message(1, 10, []);
    new DataView(zero.buffer).setUint32(0, 0, true);
    expect(() => decodeDiagMessages(zero, [])).toThrow("(length 0)");
    // A trailing piece under 16 bytes is not a message: ignored, and no DONE seen.
    const out: DiagUnixSocket[] = [];
    expect(decodeDiagMessages(join8(message(9, 10, []), new Uint8Array(8)), out)).toBe(false);
    expect(out.map((e) => e.inode)).toEqual([9]);
  });

  test("one socket is asked for by inode: found, gone (ENOENT) as null, a real one from the kernel", async () => {
    const { queryUnixSocket } = await import("../../lib/sys/sock-diag.ts");
    const err = new Uint8Array(36);
    new DataView(err.buffer).setUint32(0, 36, true);
    new DataView(err.buffer).setUint16(4, 2, true);
    new DataView(err.buffer).setInt32(16, -2, true);
    expect(queryUnixSocket(5, { recv: feeder([err]).recv })).toBeNull();
    expect(queryUnixSocket(5, { recv: feeder([message(5, 10, [[3, u32(7, 8)]])]).recv })).toEqual({
      inode: 5, state: "listen", path: null, peer: null, vfs: null, uid: null, icons: [7, 8],
    });
    const dir = shortDir();
    const fd = listen(join(dir, "q.sock"));
    const real = queryUnixSocket(socketInode(fd));
    expect([real?.path, real?.state, real?.icons], `what I saw: ${JSON.stringify(real)}`).toEqual([join(dir, "q.sock"), "listen", []]);
  });

  test("a message whose length runs past the buffer, or a kernel error, throws instead of guessing", () => {
    const bad = message(1, 10, []);
    new DataView(bad.buffer).setUint32(0, 4096, true);
    expect(() => decodeDiagMessages(bad, [])).toThrow(/malformed netlink message/);
    const err = new Uint8Array(36);
    new DataView(err.buffer).setUint32(0, 36, true);
    new DataView(err.buffer).setUint16(4, 2, true);
    new DataView(err.buffer).setInt32(16, -13, true);
    expect(() => decodeDiagMessages(err, [])).toThrow(/kernel error 13/);
    // An attribute longer than its message is ignored, not read past the end.
    const attr = message(5, 1, [[0, new TextEncoder().encode("/x")]]);
    new DataView(attr.buffer).setUint16(32, 200, true);
    const out: DiagUnixSocket[] = [];
    decodeDiagMessages(attr, out);
    expect(out).toEqual([{ inode: 5, state: "connected", path: null, peer: null, vfs: null, uid: null }]);
  });
});

describe("VMs that pose as others", () => {
  const vm = (name: string | null, pid: number, uuid: string | null = null, uid = 0, user: string | null = "root"): HostVm => ({
    name, pid, uuid, owner: { uid, user }, sources: ["cmdline"], qmp: [], startedPaused: false, running: null,
    ports: [hostPort({ kind: "serial", name: "p", id: `id${pid}`, backend: "unix", path: `/run/${pid}.sock`, mode: "connect" })],
  });
  const uuid = "0b4fa8c2-1d5e-4b8a-9f3e-2c7d9e6a5b10";
  const d: HostDiscovery = {
    vms: [
      vm("web01", 7925, uuid),
      vm("7925", 31337, null, 65534, "nobody"), // named after the real VM's pid
      vm(uuid.toUpperCase(), 31338, null, 1000, null), // named after its uuid
      vm("pid", 4000), // literally named "pid"
      vm("42", 42), // named after its own pid: one VM, not ambiguous
    ],
    notes: [],
  };
  const fail = (v: string, p: string): VmchanError => {
    try {
      resolveVmPort(d, v, p);
    } catch (err) {
      if (err instanceof VmchanError) return err;
      throw err;
    }
    throw new Error(`expected "${v}:${p}" to fail`);
  };

  test("a name that is another VM's pid is ambiguous, listing both with their owners and how to pick", () => {
    const e = fail("7925", "p");
    expect([e.message, e.hint, e.code]).toEqual([
      'VM "7925" is ambiguous: it matches pid 7925 "web01" (matches its pid, user "root" (uid 0)); pid 31337 "7925" (matches its name, user "nobody" (uid 65534))',
      `pick one with pid:PID:PORT, e.g. "pid:7925:PORT", uuid:UUID:PORT or name:NAME:PORT; see 'vmchan ports list'`,
      ExitCode.usage,
    ]);
    // Whatever order discovery lists them in, the VM the pid is really of comes first and is the example.
    const reversed = (() => {
      try {
        resolveVmPort({ vms: [...d.vms].reverse(), notes: [] }, "7925", "p");
      } catch (err) {
        return err as VmchanError;
      }
      throw new Error("expected an ambiguity");
    })();
    expect([reversed.message, reversed.hint]).toEqual([e.message, e.hint]);
  });

  test("a name that is another VM's uuid is ambiguous too", () => {
    const e = fail(uuid.toUpperCase(), "p");
    expect(e.code).toBe(ExitCode.usage);
    expect(e.message).toContain('pid 7925 "web01" (matches its uuid');
    expect(e.message).toContain(`pid 31338 "${uuid.toUpperCase()}" (matches its name, uid 1000)`);
    // Names compare exactly, uuids in any case: the lower-case uuid is only the real VM's.
    expect(resolveVmPort(d, uuid, "p").vm.pid).toBe(7925);
  });

  test("pid:, uuid: and name: pick one VM whatever the others are called", () => {
    const pick = (v: string, p: string) => resolveVmPort(d, v, p).vm.pid;
    expect([pick("pid", "7925:p"), pick("name", "7925:p"), pick("uuid", `${uuid.toUpperCase()}:p`), pick("name", `${uuid.toUpperCase()}:p`)]).toEqual([
      7925, 31337, 7925, 31338,
    ]);
    expect([pick("name", "pid:p"), pick("pid", "4000:p"), pick("42", "p"), pick("web01", "p")]).toEqual([4000, 4000, 42, 7925]);
    expect(fail("pid", "99999:p").message).toBe('no VM named "pid:99999": running VMs are "web01", "7925", "' + uuid.toUpperCase() + '", "pid", "42"');
    // A port name with a colon still works for a VM named plainly.
    expect(fail("web01", "a:b").message).toBe('no port named "a:b" in VM "web01": it has "p"');
  });
});

describe("sockets that are not the VM's", () => {
  test("a socket file owned by another user than the VM's and root is refused by VM:NAME with exit 12", async () => {
    const dir = shortDir();
    const path = join(dir, "a.sock");
    listen(path);
    chownSync(path, 65534, 65534);
    fx = new FixtureRoot()
      .file("/proc/900/cmdline", ["qemu-system-x86_64", "-name", "vm1", "-chardev", `socket,id=c,path=${path},server=on,wait=off`, "-device", "virtserialport,chardev=c,name=p", ""].join("\0"))
      .file("/proc/900/status", "Name:\tqemu\nUid:\t64055\t64055\t64055\t64055\n")
      .file("/etc/passwd", "nobody:x:65534:65534::/:/bin/false\nlibvirt-qemu:x:64055:108::/:/bin/false\n");
    const warnings: string[] = [];
    const targetOf = hostTargetResolver({
      procRoot: join(fx.root, "proc"), libvirtDirs: [], passwdFile: join(fx.root, "etc/passwd"), warn: (l) => warnings.push(l), euid: 0,
    });
    const resolve = async (vm: string, port: string) => (await targetOf(vm, port)).path;
    const err = await resolve("vm1", "p").catch((e) => e);
    expect(err, `what I saw: ${err}`).toBeInstanceOf(VmchanError);
    expect([err.code, err.message, err.hint]).toEqual([
      ExitCode.untrusted,
      `refusing "vm1:p": the socket file at ${path} belongs to user "nobody" (uid 65534), not to the VM's user "libvirt-qemu" (uid 64055) or root`,
      `if you trust that socket anyway, connect to it as 'unix:${path}'`,
    ]);
    // ports list shows why, and the owner.
    const r = await runCommand(fx.root, (ctx) => portsList(ctx, { qmp: false, json: true }));
    expect(r.stderr).toContain(`vmchan: note: VM "vm1" (pid 900): port "p" is not trusted: the socket file at ${path} belongs to user "nobody"`);
    const listing = JSON.parse(r.stdout);
    expect([listing.host.vms[0].owner, listing.host.vms[0].ports[0].untrusted]).toEqual([
      { uid: 64055, user: "libvirt-qemu" },
      `the socket file at ${path} belongs to user "nobody" (uid 65534), not to the VM's user "libvirt-qemu" (uid 64055) or root`,
    ]);
    // Once the file is the VM user's, the same address resolves, and no warning: libvirt-qemu is a service account.
    chownSync(path, 64055, 108);
    expect(await resolve("vm1", "p")).toBe(path);
    expect(warnings).toEqual([]);
  });

  test("root, or any user, is warned when the VM it sends to runs as another ordinary user; its owner is not", async () => {
    const dir = shortDir();
    const path = join(dir, "b.sock");
    listen(path);
    chownSync(path, 65534, 65534);
    fx = new FixtureRoot()
      .file("/proc/901/cmdline", ["qemu-system-x86_64", "-name", "vm2", "-chardev", `socket,id=c,path=${path},server=on`, "-device", "virtserialport,chardev=c,name=p", ""].join("\0"))
      .file("/proc/901/status", "Uid:\t65534\t65534\t65534\t65534\n")
      .file("/etc/passwd", "nobody:x:65534:65534::/:/bin/false\n");
    const opts = { procRoot: join(fx.root, "proc"), libvirtDirs: [], passwdFile: join(fx.root, "etc/passwd") };
    const hostResolver = (o: Parameters<typeof hostTargetResolver>[0]) => async (vm: string, port: string) => (await hostTargetResolver(o)(vm, port)).path;
    const asRoot: string[] = [];
    expect(await hostResolver({ ...opts, euid: 0, warn: (l) => asRoot.push(l) })("vm2", "p")).toBe(path);
    expect(asRoot).toEqual([
      'VM "vm2" (pid 901) runs as user "nobody" (uid 65534), not as you, root or a QEMU service account: any process of that user could pose as it',
    ]);
    const asOwner: string[] = [];
    expect(await hostResolver({ ...opts, euid: 65534, warn: (l) => asOwner.push(l) })("pid", "901:p")).toBe(path);
    expect(asOwner).toEqual([]);
    const asOther: string[] = [];
    expect(await hostResolver({ ...opts, euid: 1000, warn: (l) => asOther.push(l) })("vm2", "p")).toBe(path);
    expect(asOther).toHaveLength(1);
  });

  test("with QEMU's own sockets known, a socket file that none of them is bound to is not trusted", () => {
    const dir = shortDir();
    const path = join(dir, "c.sock");
    listen(path);
    const table = tableFromSockDiag();
    const mine = table.sockets.find((s) => s.path === path)!;
    const qemuSockets = (files: { dev: number; ino: number }[]): ProcSockets => ({
      pathByFd: new Map(), connected: new Set(), listening: new Set(), listeners: [], forgedFds: [], source: "sock_diag",
      listeningFiles: new Map(files.map((f, i) => [`/x${i}`, f])),
    });
    const owner = { uid: 0, user: "root" };
    expect(socketDistrust(path, owner, { sockets: qemuSockets([mine.vfs!]) })).toBeNull();
    expect(socketDistrust(path, owner, { sockets: qemuSockets([{ dev: mine.vfs!.dev, ino: mine.vfs!.ino + 1 }]) })).toBe(
      `the socket file at ${path} is not one QEMU listens on (it was replaced, or another process made it)`,
    );
    expect(socketDistrust(join(dir, "missing"), owner, { sockets: qemuSockets([]) })).toBeNull();
  });

  test("ports list --vm takes pid:, uuid: and name: as well as a bare name or pid", async () => {
    const cmd = (name: string) => ["qemu-system-x86_64", "-name", name, ""].join("\0");
    fx = new FixtureRoot().file("/proc/500/cmdline", cmd("600")).file("/proc/600/cmdline", cmd("web"));
    const vms = async (vm: string) => {
      const r = await runCommand(fx!.root, (ctx) => portsList(ctx, { qmp: false, json: true, vm }));
      return r.code === 0 ? JSON.parse(r.stdout).host.vms.map((v: HostVm) => v.pid) : r.stderr;
    };
    expect([await vms("600"), await vms("pid:600"), await vms("name:600"), await vms("web")]).toEqual([[500, 600], [600], [500], [600]]);
  });
});

describe("console targets follow the same rules", () => {
  const vm = (name: string, pid: number, uid: number, untrusted?: string): HostVm => ({
    name, pid, uuid: null, owner: { uid, user: null }, sources: ["cmdline"], qmp: [], startedPaused: false, running: null,
    ports: [hostPort({ kind: "console", name: "con0", backend: "unix", path: `/run/${pid}.sock`, mode: "connect", ...(untrusted && { untrusted }) })],
  });
  const discovery: HostDiscovery = { vms: [vm("web01", 7925, 0), vm("7925", 31337, 65534)], notes: [] };
  const options = {
    discover: async () => discovery,
    resolveVmPort: async (): Promise<never> => {
      throw new Error("unused");
    },
    procRoot: "/nonexistent",
    warn: () => {},
  };

  test("a console named by a pid another VM uses as its name is ambiguous; pid: and name: pick one", async () => {
    const { resolveConsoleTarget } = await import("../../lib/console/target.ts");
    const err = await resolveConsoleTarget("7925", options).catch((e) => e);
    expect([err.code, err.message], `what I saw: ${err}`).toEqual([
      ExitCode.usage,
      'VM "7925" is ambiguous: it matches pid 7925 "web01" (matches its pid, uid 0); pid 31337 "7925" (matches its name, uid 65534)',
    ]);
    expect((await resolveConsoleTarget("pid:7925", options)).label).toBe("pid:7925:con0");
    expect(await resolveConsoleTarget("pid:7925", options)).toMatchObject({ kind: "unix", path: "/run/7925.sock" });
    expect(await resolveConsoleTarget("name:7925", options)).toMatchObject({ kind: "unix", path: "/run/31337.sock" });
  });

  test("an untrusted console socket is refused with exit 12", async () => {
    const { resolveConsoleTarget } = await import("../../lib/console/target.ts");
    const d: HostDiscovery = { vms: [vm("w", 5, 0, "the socket file at /run/5.sock belongs to uid 1000, not to the VM's uid 0 or root")], notes: [] };
    const err = await resolveConsoleTarget("w", { ...options, discover: async () => d }).catch((e) => e);
    expect([err.code, err.message], `what I saw: ${err}`).toEqual([
      ExitCode.untrusted,
      'refusing the console of VM "w": the socket file at /run/5.sock belongs to uid 1000, not to the VM\'s uid 0 or root',
    ]);
  });
});

describe("libvirt domains are not lent to impostors", () => {
  test("a process with a libvirt domain's name but not its pid does not take the domain's identity", async () => {
    const { discoverHosts } = await import("../../lib/host/discover.ts");
    const xml = readFileSync(join(import.meta.dir, "../fixtures/host/web01.xml"), "utf8"); // domstatus pid 5151
    fx = new FixtureRoot()
      .file("/run/libvirt/qemu/web01.xml", xml)
      .file(
        "/proc/6666/cmdline",
        [
          "qemu-system-x86_64", "-name", "web01", "-uuid", "0b4fa8c2-1d5e-4b8a-9f3e-2c7d9e6a5b10",
          "-chardev", "socket,id=c,path=/tmp/evil.sock,server=on", "-device", "virtserialport,chardev=c,name=org.qemu.guest_agent.0", "",
        ].join("\0"),
      )
      .file("/proc/6666/status", "Uid:\t65534\t65534\t65534\t65534\n");
    const d = await discoverHosts({ procRoot: join(fx.root, "proc"), libvirtDirs: [join(fx.root, "run/libvirt/qemu")], useQmp: false, passwdFile: "/nonexistent" });
    const seen = d.vms.map((v) => [v.name, v.pid, v.sources, v.owner]);
    expect(seen, `what I saw: ${JSON.stringify(seen)}`).toEqual([
      ["web01", 5151, ["libvirt"], null],
      ["web01", 6666, ["cmdline"], { uid: 65534, user: null }],
    ]);
    const impostor = d.vms[1]!;
    expect(impostor.ports.map((p) => [p.name, p.path])).toEqual([["org.qemu.guest_agent.0", "/tmp/evil.sock"]]);
    let err: unknown;
    try {
      resolveVmPort(d, "web01", "org.qemu.guest_agent.0");
    } catch (e) {
      err = e;
    }
    expect((err as VmchanError).message, `what I saw: ${String(err)}`).toBe(
      'VM name "web01" is ambiguous: it matches pid 5151 "web01" (matches its name); pid 6666 "web01" (matches its name, uid 65534)',
    );
  });
});

describe("the connection itself is checked", () => {
  test("a VM socket whose listener another user made is closed before a byte is written (exit 12)", async () => {
    const { SocketChannel } = await import("../../lib/host/socket-channel.ts");
    const dir = shortDir();
    chownSync(dir, 65534, 65534);
    const path = join(dir, "n.sock");
    const { child, lines } = nobodyServer(path);
    try {
      expect((await lines.next()).value, "nobody's server to listen").toBe("ready");
      const err = await SocketChannel.connect(path, "vm:p", { peerUids: [0], peerWho: 'VM "vm" (pid 1) runs as user "root" (uid 0)' }).catch((e) => e);
      expect(err, `what I saw: ${err}`).toBeInstanceOf(VmchanError);
      expect([err.code, err.hint]).toEqual([
        ExitCode.untrusted,
        `VM "vm" (pid 1) runs as user "root" (uid 0); if you trust that socket anyway, connect to it as 'unix:${path}'`,
      ]);
      expect(err.message).toMatch(new RegExp(`^refusing "vm:p": the socket at ${path} was made by pid \\d+ \\(uid 65534\\), not by the VM's user or root$`));
      expect((await lines.next()).value).toBe("closed 0");
      // The VM's own user is accepted, and the bytes arrive.
      const ok = await SocketChannel.connect(path, "vm:p", { peerUids: [65534, 0], lingerMs: 0 });
      await ok.write(new TextEncoder().encode("hello"));
      await ok.close();
      expect((await lines.next()).value).toBe("closed 5");
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
  });
  test("one service user for all VMs: a socket of that user made by another VM's QEMU is refused; the VM's own pid or listener passes", async () => {
    const { SocketChannel } = await import("../../lib/host/socket-channel.ts");
    const dir = shortDir();
    chownSync(dir, 65534, 65534);
    const path = join(dir, "s.sock");
    const { child, lines } = nobodyServer(path); // QEMU of VM A, uid 65534, made the socket VM B's path names
    try {
      expect((await lines.next()).value, "nobody's server to listen").toBe("ready");
      const vmB = { peerUids: [65534, 0], peerWho: 'VM "b" (pid 4000000) runs as uid 65534', lingerMs: 0 };
      const listener = await until("the listener in sock_diag", () => dumpUnixSockets().find((e) => e.path === path && e.state === "listen"));
      // A socket of our own, listening elsewhere: what B's QEMU listens on.
      const bFd = listen(join(dir, "b-own.sock"));
      const bInode = socketInode(bFd);
      const bListener = dumpUnixSockets().find((e) => e.inode === bInode)!;
      const refusals: [number | null, ListenerOf[]][] = [
        [4_000_000, []], // B's pid, not A's
        [null, []], // B's process unknown
        [4_000_000, [{ inode: bInode, vfs: bListener.vfs }]], // B's real listener: our connection is not pending there
        [4_000_000, [{ inode: bInode, vfs: { dev: listener.vfs!.dev, ino: listener.vfs!.ino + 1 } }]],
        [4_000_000, [{ inode: bInode, vfs: { dev: listener.vfs!.dev + 1, ino: listener.vfs!.ino } }]],
      ];
      for (const [peerPid, peerListeners] of refusals) {
        const err = await SocketChannel.connect(path, "b:p", { ...vmB, peerPid, peerListeners }).catch((e) => e);
        expect([err.code, err.message], `peerPid ${peerPid}, listeners ${JSON.stringify(peerListeners)}: what I saw: ${err}`).toEqual([
          ExitCode.untrusted,
          `refusing "b:p": the socket at ${path} was made by pid ${child.pid} (uid 65534), ${
            peerPid === null
              ? "not by root, and not bound to a socket file the VM's QEMU listens on"
              : `not by the VM's QEMU (pid ${peerPid}) or root, and not bound to a socket file it listens on`
          }`,
        ]);
        expect((await lines.next()).value, "the refused connection carried nothing").toBe("closed 0");
      }
      // The VM's own QEMU pid (setpriv execs, so the pid is the server's), or its listening file, passes.
      const aListener: ListenerOf = { inode: listener.inode, vfs: listener.vfs };
      for (const checks of [{ peerPid: child.pid, peerListeners: [] }, { peerPid: 4_000_000, peerListeners: [aListener] }]) {
        const ok = await SocketChannel.connect(path, "b:p", { ...vmB, ...checks });
        await ok.write(new TextEncoder().encode("hi"));
        await ok.close();
        expect((await lines.next()).value, `accepted with ${JSON.stringify(checks)}`).toBe("closed 2");
      }
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
  });

  test("a VM whose owner is unknown still gets a check: root's or our own socket only", async () => {
    const { hostTargetOf } = await import("../../lib/host/resolve-vm.ts");
    const { SocketChannel } = await import("../../lib/host/socket-channel.ts");
    const vm: HostVm = {
      name: "u", pid: 4_000_001, uuid: null, owner: null, sources: ["cmdline"], qmp: [], startedPaused: false, running: null,
      ports: [hostPort({ kind: "serial", name: "p", backend: "unix", mode: "connect", path: "/x" })],
    };
    const t = hostTargetOf(vm, vm.ports[0]!, { warn: () => {}, euid: 1000, procRoot: "/nonexistent" });
    expect([t.peerUids, t.peerPid], `what I saw: ${JSON.stringify(t)}`).toEqual([[0, 1000], 4_000_001]);
    const dir = shortDir();
    chownSync(dir, 65534, 65534);
    const path = join(dir, "u.sock");
    const { child, lines } = nobodyServer(path);
    try {
      expect((await lines.next()).value).toBe("ready");
      const err = await SocketChannel.connect(path, "u:p", { ...t, lingerMs: 0 }).catch((e) => e);
      expect([err.code, err.message], `what I saw: ${err}`).toEqual([
        ExitCode.untrusted,
        `refusing "u:p": the socket at ${path} was made by pid ${child.pid} (uid 65534), not by the VM's user or root`,
      ]);
      expect((await lines.next()).value).toBe("closed 0");
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
  });
});

describe("vmchan console checks its connection as VM:NAME does", () => {
  const vmWith = (path: string, owner: { uid: number; user: string | null }): HostVm => ({
    name: "c", pid: 4_000_002, uuid: null, owner, sources: ["cmdline"], qmp: [], startedPaused: false, running: null,
    ports: [hostPort({ kind: "console", name: "con0", backend: "unix", mode: "connect", path })],
  });

  test("a VM's console socket another user made is refused before a byte is written; a VM's first console too", async () => {
    const { resolveConsoleTarget } = await import("../../lib/console/target.ts");
    const { connectConsole } = await import("../../lib/console/console.ts");
    const dir = shortDir();
    chownSync(dir, 65534, 65534);
    const path = join(dir, "c.sock");
    const { child, lines } = nobodyServer(path);
    try {
      expect((await lines.next()).value).toBe("ready");
      const d: HostDiscovery = { vms: [vmWith(path, { uid: 0, user: "root" })], notes: [] };
      const fake = { discover: async () => d, procRoot: "/nonexistent", euid: 0, warn: () => {} };
      const { hostTargetOf } = await import("../../lib/host/resolve-vm.ts");
      // The VM alone (its first console) and VM:NAME (through the resolver).
      const targets = [
        await resolveConsoleTarget("c", { ...fake, resolveVmPort: async () => { throw new Error("unused"); } }),
        await resolveConsoleTarget("c:con0", { ...fake, resolveVmPort: async () => hostTargetOf(d.vms[0]!, d.vms[0]!.ports[0]!, fake) }),
      ];
      for (const target of targets) {
        const err = await connectConsole(target, 0).catch((e) => e);
        expect([err.code, err.message], `target ${JSON.stringify(target)}: what I saw: ${err}`).toEqual([
          ExitCode.untrusted,
          `refusing "${target.label}": the socket at ${path} was made by pid ${child.pid} (uid 65534), not by the VM's user or root`,
        ]);
        expect((await lines.next()).value).toBe("closed 0");
      }
      // unix:PATH is the user's own choice: it connects.
      const direct = await resolveConsoleTarget(`unix:${path}`, fake);
      const ch = await connectConsole(direct, 0);
      await ch.write(new TextEncoder().encode("x"));
      await ch.close();
      expect((await lines.next()).value).toBe("closed 1");
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
  });

  test("a VM's first console warns when the VM runs as another ordinary user, as VM:NAME does", async () => {
    const { resolveConsoleTarget } = await import("../../lib/console/target.ts");
    const warnings: string[] = [];
    const d: HostDiscovery = { vms: [vmWith("/run/none.sock", { uid: 1234, user: "mallory" })], notes: [] };
    const t = await resolveConsoleTarget("c", {
      discover: async () => d, procRoot: "/nonexistent", euid: 1000, warn: (l) => warnings.push(l),
      resolveVmPort: async () => { throw new Error("unused"); },
    });
    expect(warnings, `what I saw: ${JSON.stringify(warnings)}`).toEqual([
      'VM "c" (pid 4000002) runs as user "mallory" (uid 1234), not as you, root or a QEMU service account: any process of that user could pose as it',
    ]);
    expect(t.kind === "unix" && t.checks).toMatchObject({ peerUids: [1234, 0], peerPid: 4_000_002, held: null });
  });
});

describe("matching sock_diag's file to stat's", () => {
  test("device and inode must agree; only on btrfs and overlayfs (by statfs) the inode alone", async () => {
    const { sameSocketFile } = await import("../../lib/host/proc-sockets.ts");
    const ext4 = (254 << 8) | 1;
    const anon = 0x2f; // major 0, minor 47: a btrfs subvolume, an overlayfs, but also any tmpfs
    const file = (dev: number, ino: number | bigint, inodeOnly = false) => ({ dev, ino, inodeOnly });
    const seen = [
      sameSocketFile({ dev: ext4, ino: 99 }, file(ext4, 99)),
      sameSocketFile({ dev: ext4, ino: 99 }, file(ext4, 2 ** 32 + 99)), // sock_diag has the low 32 bits
      sameSocketFile({ dev: ext4, ino: 99 }, file(ext4, 2n ** 60n + 99n)), // overlayfs xino: past 2^53, exact as a bigint
      sameSocketFile({ dev: ext4, ino: 99 }, file(ext4, 2n ** 60n + 100n)),
      sameSocketFile({ dev: ext4, ino: 99 }, file(ext4, 100)),
      sameSocketFile({ dev: ext4, ino: 99 }, file((8 << 8) | 2, 99)), // same inode number, another disk
      sameSocketFile({ dev: ext4, ino: 99 }, file(anon, 99, true)), // btrfs/overlayfs by statfs
      sameSocketFile({ dev: ext4, ino: 99 }, file(anon, 98, true)),
      sameSocketFile({ dev: ext4, ino: 99 }, file(anon, 99)), // tmpfs (anonymous device, not btrfs/overlayfs): exact
      sameSocketFile({ dev: 0x30, ino: 99 }, file(anon, 99)), // another tmpfs with an inode churned to match
      sameSocketFile(null, file(ext4, 99)),
    ];
    expect(seen, `what I saw: ${JSON.stringify(seen)}`).toEqual([true, true, true, false, false, false, true, false, false, false, false]);
  });

  test("a socket file on a tmpfs mounted over the directory, inode churned to match, is not the VM's", async () => {
    const { socketFileAt, sameSocketFile } = await import("../../lib/host/proc-sockets.ts");
    // A real tmpfs (anonymous device, major 0): statfs says tmpfs, so the device must match exactly.
    const base = mkdtempSync("/dev/shm/vt");
    dirs.push(base);
    const path = join(base, "t.sock");
    listen(path);
    const f = socketFileAt(path)!;
    const st = require("node:fs").statSync(path);
    expect([Math.floor(f.dev / 256) % 4096, f.inodeOnly, f.ino], `what I saw: ${JSON.stringify({ ...f, ino: String(f.ino) })}`).toEqual([0, false, BigInt(st.ino)]);
    const listener = dumpUnixSockets().find((s) => s.path === path && s.state === "listen")!;
    expect(sameSocketFile(listener.vfs, f), `vfs ${JSON.stringify(listener.vfs)} file dev ${f.dev}`).toBe(true);
    // The attacker's tmpfs is another anonymous device: the same inode number there is not enough.
    expect(sameSocketFile({ dev: listener.vfs!.dev + 1, ino: listener.vfs!.ino }, f)).toBe(false);
  });
});

describe("bounds", () => {
  test("a /proc/net/unix text past its bound is refused, not read into memory whole", () => {
    const { readProcText } = require("../../lib/host/proc-sockets.ts") as typeof import("../../lib/host/proc-sockets.ts");
    const dir = shortDir();
    const file = join(dir, "unix");
    require("node:fs").writeFileSync(file, "x".repeat(5000));
    expect(readProcText(file, 5000)).toHaveLength(5000);
    expect(() => readProcText(file, 4999)).toThrow(`${file} is larger than 4999 bytes`);
  });
});

describe("held state for VM:NAME comes from QEMU's own fds", () => {
  test("a forged connected line with an inode of its own does not make a VM's port look held", async () => {
    const { hostTargetResolver } = await import("../../lib/host/resolve-vm.ts");
    const { unixSocketHeld } = await import("../../lib/host/unix-held.ts");
    const text = [
      "Num       RefCount Protocol Flags    Type St Inode Path",
      line(700, "01", true, "/run/vm/a.sock"), // QEMU's listener (its fd 5)
      line(800, "01", true, "/tmp/x"), // the attacker's socket, whose path went on with a newline and:
      line(424242, "03", false, "/run/vm/a.sock"), // a made-up accepted connection on the VM's path
      "",
    ].join("\n");
    fx = new FixtureRoot()
      .file("/proc/950/cmdline", ["qemu-system-x86_64", "-name", "vm5", "-chardev", "socket,id=c,path=/run/vm/a.sock,server=on", "-device", "virtserialport,chardev=c,name=p", ""].join("\0"))
      .file("/proc/950/status", "Uid:\t0\t0\t0\t0\n")
      .file("/proc/950/net/unix", text)
      .link("/proc/950/fd/5", "socket:[700]");
    // Asked by path, the text cannot tell the made-up line from a real one.
    const byPath = (t: string) => unixSocketHeld("/run/vm/a.sock", tableFromProcText(t, "/proc/950/net/unix"));
    expect(byPath(text)).toBe(true);
    // VM:NAME looks at the sockets QEMU holds: none is connected.
    const target = await hostTargetResolver({ procRoot: join(fx.root, "proc"), libvirtDirs: [], passwdFile: "/nonexistent", warn: () => {} })("vm5", "p");
    expect(target).toEqual({ path: "/run/vm/a.sock", held: false, peerUids: [0], peerWho: 'VM "vm5" (pid 950) runs as uid 0', peerPid: 950, peerListeners: [] });
    // The same text with the listener's own inode repeated: unknown, by path and by fd alike (so connecting is not refused).
    const dup = text.replace("424242", "700");
    fx.file("/proc/950/net/unix", dup);
    expect(byPath(dup)).toBeNull();
    const again = await hostTargetResolver({ procRoot: join(fx.root, "proc"), libvirtDirs: [], passwdFile: "/nonexistent", warn: () => {} })("vm5", "p");
    expect(again.held).toBeNull();
  });

  test("held unknown (null) connects anyway: a forged line that makes the path look held does not stop VM:NAME", async () => {
    const { SocketChannel } = await import("../../lib/host/socket-channel.ts");
    const dir = shortDir();
    const path = join(dir, "k.sock");
    const got: Uint8Array[] = [];
    const srv = net.createServer((c) => {
      clients.push(c);
      c.on("data", (b: Buffer) => got.push(b));
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(path, r));
    // Make the path look held to a by-path look: a real client connected.
    const other = net.connect(path);
    clients.push(other);
    await until("the first client to be seen", () => (unixSocketHeld(path) ? true : null));
    // Not asked (undefined): the by-path look refuses.
    const refused = await SocketChannel.connect(path, "vm:p", { lingerMs: 0 }).catch((e) => e);
    expect([refused.code, refused.message], `what I saw: ${refused}`).toEqual([ExitCode.busy, `cannot connect to "vm:p": another client already holds ${path}`]);
    // Unknown (null), as for a VM whose fds a forged line hid: connect, and the bytes arrive.
    const ch = await SocketChannel.connect(path, "vm:p", { lingerMs: 0, held: null });
    await ch.write(new TextEncoder().encode("through"));
    await ch.close();
    await until("the bytes to arrive", () => (Buffer.concat(got).toString() === "through" ? true : null));
    // QEMU's own fds say free: connect too.
    const free = await SocketChannel.connect(path, "vm:p", { lingerMs: 0, held: false });
    await free.close();
  });
});

describe("paths QMP reports are checked after QMP, against QEMU's own sockets", () => {
  /** A QEMU whose QMP shows one hot-plugged port "org.b" on chardev "hp" leading to `path`. */
  const qmpShowing = (path: string): QmpConnect => async () => ({
    close() {},
    async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
      const answers: Record<string, unknown> = {
        "query-status": { running: true },
        "query-chardev": [{ label: "hp", filename: `disconnected:unix:${path},server=on`, "frontend-open": false }],
        "qom-list": args?.path === "/machine/peripheral" ? [{ name: "hp0", type: "child<virtserialport>" }] : [],
      };
      if (command === "qom-get") {
        const props: Record<string, unknown> = { name: "org.b", chardev: "hp", nr: 1, parent_bus: "/machine/x/virtio-serial0.0" };
        return props[String(args?.property)] as T;
      }
      return answers[command] as T;
    },
  });
  const qemuA = (root: FixtureRoot, withFds: boolean) => {
    root
      .file("/proc/970/cmdline", ["qemu-system-x86_64", "-name", "a", "-qmp", "unix:/run/a.qmp,server=on,wait=off", ""].join("\0"))
      .file("/proc/970/status", "Uid:\t0\t0\t0\t0\n")
      .file("/proc/970/net/unix", ["Num RefCount Protocol Flags Type St Inode Path", line(103, "01", true, "/run/a.qmp"), ""].join("\n"));
    if (withFds) root.link("/proc/970/fd/3", "socket:[103]");
    return root;
  };

  test("a hot-plugged port whose QMP path is another VM's socket (same owner) is untrusted, and VM:NAME refuses it", async () => {
    const { discoverHosts } = await import("../../lib/host/discover.ts");
    const { hostTargetResolver } = await import("../../lib/host/resolve-vm.ts");
    const dir = shortDir();
    const other = join(dir, "b.sock"); // VM B's socket: root's, like VM A
    listen(other);
    for (const withFds of [true, false]) {
      fx?.dispose();
      fx = qemuA(new FixtureRoot(), withFds);
      const opts = { procRoot: join(fx.root, "proc"), libvirtDirs: [], passwdFile: "/nonexistent", qmpConnect: qmpShowing(other) };
      const d = await discoverHosts(opts);
      const port = d.vms[0]!.ports.find((p) => p.name === "org.b");
      const why = withFds
        ? `no socket of QEMU's listens on ${other} (it was replaced, or another process made it)`
        : `${other} was reported by QMP alone, which the VM's QEMU controls, and QEMU's own sockets could not be read to confirm it`;
      expect([port?.path, port?.untrusted], `what I saw: ${JSON.stringify(d)}`).toEqual([other, why]);
      expect(d.notes).toContain(`VM "a" (pid 970): port "org.b" is not trusted: ${why}`);
      const err = await hostTargetResolver({ ...opts, warn: () => {} })("a", "org.b").catch((e) => e);
      expect([err.code, err.message], `what I saw: ${err}`).toEqual([ExitCode.untrusted, `refusing "a:org.b": ${why}`]);
    }
  });

  test("a QMP path that QEMU's own fds show it listening on is trusted", async () => {
    const { discoverHosts } = await import("../../lib/host/discover.ts");
    const dir = shortDir();
    const own = join(dir, "a.sock");
    listen(own);
    fx = new FixtureRoot()
      .file("/proc/971/cmdline", ["qemu-system-x86_64", "-name", "a2", "-qmp", "unix:/run/a.qmp,server=on,wait=off", ""].join("\0"))
      .file("/proc/971/status", "Uid:\t0\t0\t0\t0\n")
      .file("/proc/971/net/unix", ["Num RefCount Protocol Flags Type St Inode Path", line(103, "01", true, "/run/a.qmp"), line(104, "01", true, own), ""].join("\n"))
      .link("/proc/971/fd/3", "socket:[103]")
      .link("/proc/971/fd/4", "socket:[104]");
    const d = await discoverHosts({ procRoot: join(fx.root, "proc"), libvirtDirs: [], passwdFile: "/nonexistent", qmpConnect: qmpShowing(own) });
    const port = d.vms[0]!.ports.find((p) => p.name === "org.b");
    expect([port?.path, port?.untrusted ?? null], `what I saw: ${JSON.stringify(d)}`).toEqual([own, null]);
  });
});

describe("without sock_diag, /proc/PID/net/unix is read once per network namespace", () => {
  test("two QEMUs in one namespace share the parsed table; another namespace is read on its own", async () => {
    const text = (inode: number, path: string) => ["Num RefCount Protocol Flags Type St Inode Path", line(inode, "01", true, path), ""].join("\n");
    const vm = (pid: number) => ["qemu-system-x86_64", "-name", `v${pid}`, "-chardev", `socket,id=c,path=/run/v${pid}.sock,server=on`, "-device", "virtserialport,chardev=c,name=p", ""].join("\0");
    fx = new FixtureRoot()
      .file("/proc/981/cmdline", vm(981)).link("/proc/981/ns/net", "net:[4026531840]").link("/proc/981/fd/3", "socket:[301]")
      .file("/proc/982/cmdline", vm(982)).link("/proc/982/ns/net", "net:[4026531840]").link("/proc/982/fd/3", "socket:[302]")
      .file("/proc/983/cmdline", vm(983)).link("/proc/983/ns/net", "net:[4026532000]").link("/proc/983/fd/3", "socket:[303]")
      // The first QEMU's table holds both sockets of the shared namespace; the second's file would say otherwise if it were read.
      .file("/proc/981/net/unix", ["Num RefCount Protocol Flags Type St Inode Path", line(301, "01", true, "/run/v981.sock"), line(302, "01", true, "/run/v982.sock"), ""].join("\n"))
      .file("/proc/982/net/unix", text(302, "/run/not-read.sock"))
      .file("/proc/983/net/unix", text(303, "/run/v983.sock"));
    const { readProcSockets } = await import("../../lib/host/proc-sockets.ts");
    const cache = new Map();
    const paths = [981, 982, 983].map((pid) => [...readProcSockets(join(fx!.root, "proc"), pid, { textCache: cache }).listening]);
    expect([paths, [...cache.keys()]]).toEqual([[["/run/v981.sock"], ["/run/v982.sock"], ["/run/v983.sock"]], ["net:[4026531840]", "net:[4026532000]"]]);
  });
});

describe("one bounded passwd parser", () => {
  test("names by uid for VM owners and uids by name for autologin come from the same parser; a huge file is not read whole", async () => {
    const { parsePasswd, readPasswdFile } = await import("../../lib/passwd.ts");
    const { uidOf, checkAutologin } = await import("../../lib/getty/autologin.ts");
    const { readPasswd } = await import("../../lib/host/vm-owner.ts");
    const text = "root:x:0:0::/:/bin/sh\n:x:5:5::/:/bin/sh\nbad:x:notanumber:1::/:/bin/sh\nshort:x\nqemu:x:107:107::/:/bin/false\nqemu2:x:107:107::/:/bin/false\n";
    expect(parsePasswd(text)).toEqual([{ name: "root", uid: 0 }, { name: "qemu", uid: 107 }, { name: "qemu2", uid: 107 }]);
    expect([uidOf(text, "qemu2"), uidOf(text, "bad"), uidOf(text, "")]).toEqual([107, null, null]);
    const dir = shortDir();
    const small = join(dir, "passwd");
    require("node:fs").writeFileSync(small, text);
    expect([...readPasswd(small)]).toEqual([[0, "root"], [107, "qemu"]]); // first entry wins, as getpwuid
    expect(() => readPasswdFile(small, text.length - 1)).toThrow(`${small} is larger than ${text.length - 1} bytes`);
    // A passwd file past the bound: owners by uid only (empty map), autologin refuses with one line.
    const huge = join(dir, "etc/passwd");
    mkdirSync(dirname(huge), { recursive: true });
    require("node:fs").writeFileSync(huge, "alice:x:1000:1000::/:/bin/sh\n" + "x".repeat(4 * 1024 * 1024));
    expect(readPasswd(huge).size).toBe(0);
    const err = (() => {
      try {
        checkAutologin("alice", { root: dir });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message, `what I saw: ${err}`).toBe(`cannot check --autologin "alice": cannot read /etc/passwd: ${huge} is larger than 4 MiB`);
  });
});
