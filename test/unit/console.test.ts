import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeKey, EscapeFilter, parseEscapeKey, type KeyEvent } from "../../lib/console/escape-key.ts";
import { resolveConsoleTarget } from "../../lib/console/target.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import type { DiscoverOptions } from "../../lib/host/discover.ts";
import { type HostDiscovery, hostPort, type HostVm } from "../../lib/host/model.ts";
import type { HostTarget } from "../../lib/host/resolve-vm.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const ESC = "\x1d";

/** Events with data as strings, to compare easily. */
function feed(filter: EscapeFilter, input: string): Array<string | { cmd: string }> {
  return filter.push(bytes(input)).map((e: KeyEvent) => (e.kind === "data" ? new TextDecoder().decode(e.bytes) : { cmd: e.kind }));
}

describe("console escape key", () => {
  test("--escape takes ^X, one character or none", () => {
    expect(parseEscapeKey("^]")).toBe(0x1d);
    expect(parseEscapeKey("^a")).toBe(0x01);
    expect(parseEscapeKey("^A")).toBe(0x01);
    expect(parseEscapeKey("^?")).toBe(0x7f);
    expect(parseEscapeKey("~")).toBe(0x7e);
    expect(parseEscapeKey("none")).toBeNull();
    for (const bad of ["", "^1", "ab", "é", "ctrl-]"])
      expect(() => parseEscapeKey(bad)).toThrow(expect.objectContaining({ code: ExitCode.usage, message: expect.stringContaining("is not a key") }));
    expect([0x1d, 0x01, 0x7f, 0x7e].map(describeKey)).toEqual(["Ctrl-]", "Ctrl-A", "Ctrl-?", "~"]);
  });

  test("escape then q quits; what came before is sent, what comes after is not", () => {
    expect(feed(new EscapeFilter(0x1d), `ls\r${ESC}qecho lost`)).toEqual(["ls\r", { cmd: "quit" }]);
    expect(feed(new EscapeFilter(0x1d), `${ESC}Q`)).toEqual([{ cmd: "quit" }]);
  });

  test("escape twice sends one escape; escape then another key sends both", () => {
    expect(feed(new EscapeFilter(0x1d), `a${ESC}${ESC}b`)).toEqual([`a${ESC}b`]);
    expect(feed(new EscapeFilter(0x1d), `${ESC}x\x03`)).toEqual([`${ESC}x\x03`]);
  });

  test("the escape and its command may come in different reads", () => {
    const f = new EscapeFilter(0x1d);
    expect(feed(f, `abc${ESC}`)).toEqual(["abc"]);
    expect(f.pending).toBe(true);
    expect(feed(f, "q")).toEqual([{ cmd: "quit" }]);
    const g = new EscapeFilter(0x1d);
    expect(feed(g, ESC)).toEqual([]);
    expect(feed(g, ESC)).toEqual([ESC]);
    expect(g.pending).toBe(false);
  });

  test("escape then ? asks for help and carries on", () => {
    expect(feed(new EscapeFilter(0x1d), `a${ESC}?b`)).toEqual(["a", { cmd: "help" }, "b"]);
  });

  test("another escape key works the same; none passes everything through", () => {
    expect(feed(new EscapeFilter(0x01), `x\x01\x01y\x01q`)).toEqual(["x\x01y", { cmd: "quit" }]);
    expect(feed(new EscapeFilter(null), `${ESC}q`)).toEqual([`${ESC}q`]);
  });
});

function vm(fields: Partial<HostVm> & Pick<HostVm, "name" | "pid">): HostVm {
  return { uuid: null, sources: ["cmdline"], qmp: [], startedPaused: false, running: null, ports: [], ...fields };
}

/** A fake discovery that records how it was asked. */
function discovery(vms: HostVm[], calls: DiscoverOptions[] = []) {
  return async (options: DiscoverOptions): Promise<HostDiscovery> => {
    calls.push(options);
    return { vms: options.filter ? vms.filter(options.filter) : vms, notes: [] };
  };
}

const noResolve = async (vm: string, port: string): Promise<HostTarget> => {
  throw new Error(`unexpected resolve ${vm}:${port}`);
};

/** What the resolver gives for a VM's socket at `path`. */
const target = (path: string, pid: number | null = null): HostTarget => ({
  path, held: null, peerUids: [0], peerWho: "w", peerPid: pid, peerListeners: [],
});
/** The checks a console target of a VM with unknown owner carries (resolved with euid 1000). */
const unknownOwner = (pid: number) => ({
  held: null, peerUids: [0, 1000], peerPid: pid, peerListeners: [],
  peerWho: `the owner of VM "${"NAME"}" (pid ${pid}) is unknown, so only root's or your own socket is accepted`,
});

/** No real /proc and a fixed uid, so the checks do not depend on the machine. */
const fake = { procRoot: "/nonexistent", euid: 1000, warn: () => {} };

describe("console target", () => {
  const web = vm({
    name: "web01",
    pid: 4242,
    ports: [
      hostPort({ kind: "serial", name: "org.example.a", backend: "unix", mode: "connect", path: "/run/a.sock" }),
      hostPort({ kind: "console", name: "con0", backend: "pty", path: "/dev/pts/3" }),
      hostPort({ kind: "console", name: "con1", backend: "unix", mode: "connect", path: "/run/con1.sock" }),
    ],
  });

  test("a VM alone is its first console port with a unix socket QEMU listens on", async () => {
    const calls: DiscoverOptions[] = [];
    const t = await resolveConsoleTarget("web01", { discover: discovery([web], calls), resolveVmPort: noResolve, ...fake });
    const checks = { ...unknownOwner(4242), peerWho: unknownOwner(4242).peerWho.replace("NAME", "web01") };
    expect(t, `what I saw: ${JSON.stringify(t)}`).toEqual({ kind: "unix", label: "web01:con1", path: "/run/con1.sock", checks });
    expect(calls).toEqual([{ useQmp: false }]);
    expect(await resolveConsoleTarget("4242", { discover: discovery([web]), resolveVmPort: noResolve, ...fake })).toEqual({ ...t, label: "4242:con1" });
  });

  test("VM:NAME, unix:PATH and tcp:HOST:PORT", async () => {
    const resolve = async (v: string, p: string) => target(`/run/${v}-${p}.sock`, 4242);
    const { path: _, ...checks } = target("", 4242);
    expect(await resolveConsoleTarget("web01:org.example.a", { resolveVmPort: resolve })).toEqual({ kind: "unix", label: "web01:org.example.a", path: "/run/web01-org.example.a.sock", checks });
    expect(await resolveConsoleTarget("unix:/tmp/c.sock")).toEqual({ kind: "unix", label: "unix:/tmp/c.sock", path: "/tmp/c.sock" });
    expect(await resolveConsoleTarget("tcp:127.0.0.1:4555")).toEqual({ kind: "tcp", label: "tcp:127.0.0.1:4555", host: "127.0.0.1", port: 4555 });
  });

  test("a VM without a console port: says so and names a serial port to use instead", async () => {
    const db = vm({ name: "db", pid: 7, ports: [hostPort({ kind: "serial", name: "org.example.b", backend: "unix", mode: "connect", path: "/run/b.sock" })] });
    await expect(resolveConsoleTarget("db", { discover: discovery([db]), resolveVmPort: noResolve })).rejects.toMatchObject({
      code: ExitCode.notFound,
      message: 'VM "db" has no console port',
      hint: "name a serial port instead, e.g. 'vmchan console db:org.example.b' (with 'vmchan getty org.example.b' in the guest)",
    });
  });

  test("a console that is not a unix socket: the host resolver says what it is", async () => {
    const pty = vm({ name: "p", pid: 8, ports: [hostPort({ kind: "console", name: "con0", backend: "pty", path: "/dev/pts/3" })] });
    const asked: string[] = [];
    const resolve = async (v: string, p: string): Promise<HostTarget> => {
      asked.push(`${v}:${p}`);
      throw Object.assign(new Error('cannot connect to "p:con0": it is a pty chardev (/dev/pts/3)'), { code: ExitCode.notFound });
    };
    await expect(resolveConsoleTarget("p", { discover: discovery([pty]), resolveVmPort: resolve })).rejects.toThrow(/pty chardev/);
    expect(asked).toEqual(["p:con0"]);
  });

  test("a VM with QMP is asked again when its console is not on the command line (hot-plugged)", async () => {
    const before = vm({ name: "hp", pid: 9, qmp: ["/run/hp.qmp"] });
    const after = { ...before, ports: [hostPort({ kind: "console", name: "con0", backend: "unix", mode: "connect", path: "/run/hp-con0.sock" })] };
    const calls: DiscoverOptions[] = [];
    let n = 0;
    const discover = async (o: DiscoverOptions): Promise<HostDiscovery> => {
      calls.push(o);
      return { vms: [n++ === 0 ? before : after], notes: [] };
    };
    expect(await resolveConsoleTarget("hp", { discover, resolveVmPort: noResolve, ...fake })).toMatchObject({ kind: "unix", label: "hp:con0", path: "/run/hp-con0.sock" });
    expect(calls.length).toBe(2);
    expect(calls[1]!.useQmp).toBeUndefined();
  });

  test("an unknown VM gets the usual message with the running VMs and a did-you-mean", async () => {
    await expect(resolveConsoleTarget("web1", { discover: discovery([web]), resolveVmPort: noResolve })).rejects.toMatchObject({
      code: ExitCode.notFound,
      message: 'no VM named "web1": running VMs are "web01"',
      hint: expect.stringContaining('did you mean "web01"?'),
    });
    const twins = [vm({ name: "x", pid: 1 }), vm({ name: "x", pid: 2 })];
    await expect(resolveConsoleTarget("x", { discover: discovery(twins), resolveVmPort: noResolve })).rejects.toMatchObject({
      code: ExitCode.usage,
      message: expect.stringContaining("ambiguous"),
    });
  });

  test("guest addresses and other kinds are refused as usage errors", async () => {
    for (const text of ["port:org.example.a", "tcp-listen:4000", "unix-listen:/tmp/x", "exec:sh", "-", "/dev/hvc0"])
      await expect(resolveConsoleTarget(text, { discover: discovery([]), resolveVmPort: noResolve })).rejects.toMatchObject({ code: ExitCode.usage });
  });

  let dir = "";
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = "";
  });

  test("the path of a socket file is taken as unix:PATH", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-console-"));
    const path = join(dir, "c.sock");
    const server = Bun.listen({ unix: path, socket: { data() {} } });
    try {
      expect(await resolveConsoleTarget(path)).toEqual({ kind: "unix", label: `unix:${path}`, path });
    } finally {
      server.stop(true);
    }
  });
});
