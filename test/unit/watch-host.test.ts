import { describe, expect, test } from "bun:test";
import type { DiscoverOptions } from "../../lib/host/discover.ts";
import { type HostDiscovery, type HostPort, type HostVm, hostPort } from "../../lib/host/model.ts";
import { type QmpEvent, QmpError } from "../../lib/host/qmp.ts";
import { HostWatchEvent } from "../../lib/watch/event.ts";
import { type HostChange, HostWatcher, maxEventsPerSecond, maxPendingIds } from "../../lib/watch/host-watcher.ts";
import type { QmpEventClient, QmpEventConnect } from "../../lib/watch/qmp-session.ts";

const BUS = "/machine/peripheral/vs0/virtio-backend/vs0.0";
/** A probe that always says "look again", so every tick runs the fake discovery. */
const always = { changed: () => true };

/** A QEMU as QMP shows it; the test changes it and fires events. */
interface Machine {
  chardevs: Map<string, { filename: string; open: boolean }>;
  /** QOM path -> device. */
  devices: Map<string, { type: "virtserialport" | "virtconsole"; name: string; chardev: string; nr: number }>;
}

/** A QMP client over a Machine, answering as QEMU 7.2 did in the lab; records commands. */
class FakeQmp implements QmpEventClient {
  readonly calls: string[] = [];
  readonly #listeners = new Set<(ev: QmpEvent) => void>();
  closed = false;
  constructor(
    private readonly m: Machine,
    private readonly delayMs = 0,
  ) {}
  async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.delayMs > 0) await Bun.sleep(this.delayMs);
    if (this.closed) throw new Error("QMP connection closed");
    this.calls.push(command);
    switch (command) {
      case "query-status":
        return { running: true, status: "running" } as T;
      case "query-chardev":
        return [...this.m.chardevs].map(([label, c]) => ({ label, filename: c.filename, "frontend-open": c.open })) as T;
      case "qom-list": {
        const prefix = `${args!.path}/`;
        const children = [...this.m.devices]
          .filter(([p]) => p.startsWith(prefix))
          .map(([p, d]) => ({ name: p.slice(prefix.length), type: `child<${d.type}>` }));
        return [{ name: "type", type: "string" }, ...children] as T;
      }
      case "qom-get": {
        const d = this.m.devices.get(String(args!.path));
        const v = d && ({ name: d.name, chardev: d.chardev, nr: d.nr, parent_bus: BUS } as Record<string, unknown>)[String(args!.property)];
        if (v === undefined) throw new QmpError(command, "DeviceNotFound", `Device '${args!.path}' not found`);
        return v as T;
      }
    }
    throw new QmpError(command, "CommandNotFound", `The command ${command} has not been found`);
  }
  onEvent(listener: (ev: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }
  fire(event: string, data: Record<string, unknown>): void {
    for (const l of this.#listeners) l({ event, data, timestamp: null });
  }
  close(): void {
    this.closed = true;
  }
}

/** A server-mode unix chardev as query-chardev shows it. */
const unixChardev = (path: string, open = false) => ({ filename: `disconnected:unix:${path},server=on`, open });

/** A VM "vm1" (pid 4242) with ports a (id port-a), b (id-less) and a console, one QMP socket. */
function scene(opts: { qmp?: "ok" | "busy" | "none"; libvirt?: boolean; delayMs?: number } = {}) {
  const machine: Machine = {
    chardevs: new Map([
      ["ch-a", unixChardev("/run/vm1/a.sock")],
      ["ch-b", unixChardev("/run/vm1/b.sock")],
      ["ch-con", { filename: "unix:/run/vm1/con.sock,server=on", open: true }],
    ]),
    devices: new Map([
      ["/machine/peripheral/port-a", { type: "virtserialport", name: "org.a", chardev: "ch-a", nr: 1 }],
      ["/machine/peripheral-anon/device[0]", { type: "virtserialport", name: "org.b", chardev: "ch-b", nr: 2 }],
      ["/machine/peripheral/con0", { type: "virtconsole", name: "org.con", chardev: "ch-con", nr: 0 }],
    ]),
  };
  const cmdlinePorts: HostPort[] = [
    hostPort({ kind: "serial", name: "org.a", id: "port-a", chardev: "ch-a", backend: "unix", path: "/run/vm1/a.sock", mode: "connect" }),
    hostPort({ kind: "serial", name: "org.b", chardev: "ch-b", backend: "unix", path: "/run/vm1/b.sock", mode: "connect" }),
    hostPort({ kind: "console", name: "org.con", id: "con0", chardev: "ch-con", backend: "unix", path: "/run/vm1/con.sock", mode: "connect" }),
  ];
  const vm1: HostVm = {
    name: "vm1",
    pid: 4242,
    uuid: null,
    sources: opts.libvirt ? ["cmdline", "libvirt"] : ["cmdline"],
    qmp: opts.qmp === "none" ? [] : ["/run/vm1/qmp.sock"],
    startedPaused: false,
    running: null,
    ports: cmdlinePorts,
  };
  const world = { vms: [vm1] as HostVm[], notes: [] as string[] };
  const clients: FakeQmp[] = [];
  const connect: QmpEventConnect = async (path) => {
    if (opts.qmp === "busy") throw new Error(`QMP connect to "${path}" failed: no greeting within 500 ms`);
    const c = new FakeQmp(machine, opts.delayMs);
    clients.push(c);
    return c;
  };
  const discover = async (o: DiscoverOptions): Promise<HostDiscovery> => {
    expect(o.useQmp).toBe(false);
    return { vms: structuredClone(world.vms).filter((v) => o.filter?.(v) ?? true), notes: [...world.notes] };
  };
  const changes: HostChange[] = [];
  const notes: string[] = [];
  const watcher = new HostWatcher({
    emit: (c) => {
      HostWatchEvent.parse({ time: new Date().toISOString(), ...c });
      changes.push(c);
    },
    note: (n) => notes.push(n),
    discover,
    qmpConnect: connect,
    qmpRetryMs: 60_000,
    probe: always,
  });
  /** Lets pending QMP work (connect, queued refreshes, event handling) finish. */
  const settle = () => Bun.sleep(10);
  /** The changes since the last call. */
  const take = () => changes.splice(0);
  return { machine, vm1, world, clients, watcher, settle, take, notes };
}

/** A host change of vm1 (pid 4242). */
function ch(event: HostChange["event"], port: string | null, id: string | null, path: string | null, via: HostChange["via"], extra: Partial<HostChange> = {}): HostChange {
  return { side: "host", event, vm: "vm1", pid: 4242, port, id, path, via, ...extra };
}

/** A scene after a port "org.hot" (id hot0) was hot-plugged and reported by the poll. */
async function sceneWithHotPlug(): Promise<ReturnType<typeof scene>> {
  const s = scene();
  await s.watcher.tick();
  await s.settle();
  s.machine.chardevs.set("ch-hot", unixChardev("/run/vm1/hot.sock"));
  s.machine.devices.set("/machine/peripheral/hot0", { type: "virtserialport", name: "org.hot", chardev: "ch-hot", nr: 3 });
  await s.watcher.tick();
  await s.settle();
  expect(s.take()).toEqual([ch("port-added", "org.hot", "hot0", "/run/vm1/hot.sock", "qmp-poll")]);
  return s;
}

describe("host watcher", () => {
  test("what runs when watching begins is recorded, not reported", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([]);
    expect(s.clients).toHaveLength(1);
    s.watcher.close();
    expect(s.clients[0]!.closed).toBe(true);
  });

  test("VSERPORT_CHANGE maps the device id to the port name; a repeated state is flagged as coalesced", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    const qmp = s.clients[0]!;
    qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: true });
    await s.settle();
    expect(s.take()).toEqual([ch("guest-opened", "org.a", "port-a", "/run/vm1/a.sock", "qmp-event")]);
    qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: false });
    await s.settle();
    expect(s.take()).toEqual([ch("guest-closed", "org.a", "port-a", "/run/vm1/a.sock", "qmp-event")]);
    // A close and reopen within QEMU's one-second window arrive as a second "open:false".
    qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: false });
    await s.settle();
    expect(s.take()).toEqual([ch("guest-closed", "org.a", "port-a", "/run/vm1/a.sock", "qmp-event", { coalesced: true })]);
    // The poll agrees with the events and adds nothing.
    s.machine.chardevs.get("ch-a")!.open = false;
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([]);
    s.watcher.close();
  });

  test("an event that arrives while the first poll is still running is reported, not taken as the starting state", async () => {
    const s = scene({ delayMs: 5 });
    await s.watcher.tick();
    while (s.clients.length === 0) await Bun.sleep(1);
    await Bun.sleep(1);
    s.machine.chardevs.get("ch-a")!.open = true;
    s.clients[0]!.fire("VSERPORT_CHANGE", { id: "port-a", open: true });
    // The first poll (5 ms per QMP call) reports it when it ends: wait for that, then a little more for a
    // duplicate that must not come.
    const got: HostChange[] = [];
    for (let i = 0; i < 500 && got.length === 0; i++) {
      await Bun.sleep(10);
      got.push(...s.take());
    }
    await Bun.sleep(200);
    got.push(...s.take());
    expect(got).toEqual([ch("guest-opened", "org.a", "port-a", "/run/vm1/a.sock", "qmp-event")]);
    s.watcher.close();
  });

  test("an event for a port hot-plugged since the last poll reports the port first, then the open, once", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    s.machine.chardevs.set("ch-hot", { ...unixChardev("/run/vm1/hot.sock"), open: true });
    s.machine.devices.set("/machine/peripheral/hot0", { type: "virtserialport", name: "org.hot", chardev: "ch-hot", nr: 3 });
    s.clients[0]!.fire("VSERPORT_CHANGE", { id: "hot0", open: true });
    await s.settle();
    expect(s.take()).toEqual([
      ch("port-added", "org.hot", "hot0", "/run/vm1/hot.sock", "qmp-poll"),
      ch("guest-opened", "org.hot", "hot0", "/run/vm1/hot.sock", "qmp-event"),
    ]);
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([]);
    s.watcher.close();
  });

  test("hot-plug is found by the poll, hot-unplug by DEVICE_DELETED, each reported once", async () => {
    const s = await sceneWithHotPlug();
    s.machine.devices.delete("/machine/peripheral/hot0");
    s.clients[0]!.fire("DEVICE_DELETED", { device: "hot0", path: "/machine/peripheral/hot0" });
    await s.settle();
    expect(s.take()).toEqual([ch("port-removed", "org.hot", "hot0", "/run/vm1/hot.sock", "qmp-event")]);
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([]);
    s.watcher.close();
  });

  test("a lost QMP session does not make hot-plugged ports look removed when the command line is read again", async () => {
    const s = await sceneWithHotPlug();
    s.clients[0]!.close(); // the next poll fails: the session is dropped
    await s.watcher.tick();
    await s.settle();
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([]);
    s.watcher.close();
  });

  test("a port without an id gets no events: its open state is polled with query-chardev", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    s.machine.chardevs.get("ch-b")!.open = true;
    // The console's flag says nothing (QEMU reports a virtconsole open regardless).
    s.machine.chardevs.get("ch-con")!.open = false;
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([ch("guest-opened", "org.b", null, "/run/vm1/b.sock", "qmp-poll")]);
    s.machine.chardevs.get("ch-b")!.open = false;
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([ch("guest-closed", "org.b", null, "/run/vm1/b.sock", "qmp-poll")]);
    s.watcher.close();
  });

  test("device properties are asked once per device, so an idle poll is four commands", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    const qmp = s.clients[0]!;
    const before = qmp.calls.length;
    await s.watcher.tick();
    await s.settle();
    expect(qmp.calls.slice(before)).toEqual(["query-status", "query-chardev", "qom-list", "qom-list"]);
    s.watcher.close();
  });

  test("a VM starting is reported with its ports; stopping reports them removed, then the VM", async () => {
    const s = scene({ qmp: "none" });
    const vm1 = s.world.vms.pop()!;
    await s.watcher.tick();
    expect(s.take()).toEqual([]);
    s.world.vms.push(vm1);
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([
      ch("vm-started", null, null, null, "proc"),
      ch("port-added", "org.a", "port-a", "/run/vm1/a.sock", "proc"),
      ch("port-added", "org.b", null, "/run/vm1/b.sock", "proc"),
      ch("port-added", "org.con", "con0", "/run/vm1/con.sock", "proc"),
    ]);
    s.world.vms.pop();
    await s.watcher.tick();
    expect(s.take()).toEqual([
      ch("port-removed", "org.a", "port-a", "/run/vm1/a.sock", "proc"),
      ch("port-removed", "org.b", null, "/run/vm1/b.sock", "proc"),
      ch("port-removed", "org.con", "con0", "/run/vm1/con.sock", "proc"),
      ch("vm-stopped", null, null, null, "proc"),
    ]);
  });

  test("rounds the probe calls unchanged skip discovery but still poll QMP; a full discovery comes every fullEveryMs", async () => {
    const s = scene();
    let discoveries = 0;
    let changed = true;
    const clock = { t: 0 };
    const w = new HostWatcher({
      emit: () => {},
      note: () => {},
      now: () => clock.t,
      discover: async () => (discoveries++, { vms: structuredClone(s.world.vms), notes: [] }),
      qmpConnect: async () => new FakeQmp(s.machine),
      probe: { changed: () => changed },
      fullEveryMs: 10_000,
    });
    await w.tick();
    await s.settle();
    changed = false;
    for (let i = 0; i < 5; i++) {
      clock.t += 1000;
      await w.tick();
    }
    expect(discoveries).toBe(1);
    clock.t += 5000;
    await w.tick();
    expect(discoveries).toBe(2);
    changed = true;
    await w.tick();
    expect(discoveries).toBe(3);
    w.close();
  });

  test("a VM started after watching began gets a QMP session; a port the guest already has open is reported opened", async () => {
    const s = scene();
    const vm1 = s.world.vms.pop()!;
    await s.watcher.tick();
    s.world.vms.push(vm1);
    s.machine.chardevs.get("ch-a")!.open = true;
    await s.watcher.tick();
    await s.settle();
    expect(s.take()).toEqual([
      ch("vm-started", null, null, null, "proc"),
      ch("port-added", "org.a", "port-a", "/run/vm1/a.sock", "proc"),
      ch("port-added", "org.b", null, "/run/vm1/b.sock", "proc"),
      ch("port-added", "org.con", "con0", "/run/vm1/con.sock", "proc"),
      ch("guest-opened", "org.a", "port-a", "/run/vm1/a.sock", "qmp-poll"),
    ]);
    // The event of that open, arriving late, is not a second report.
    s.clients[0]!.fire("VSERPORT_CHANGE", { id: "port-a", open: true });
    await s.settle();
    expect(s.take()).toEqual([]);
    s.watcher.close();
  });

  test("a busy QMP socket on a libvirt VM: said once, and guest open/close comes from libvirt's live XML", async () => {
    const s = scene({ qmp: "busy", libvirt: true });
    await s.watcher.tick();
    await s.settle();
    await s.watcher.tick();
    await s.settle();
    expect(s.notes).toEqual([
      'VM "vm1" (pid 4242): no QMP socket answered (/run/vm1/qmp.sock is busy (no greeting within 500 ms: another client, such as libvirt, holds it)); guest open/close comes from libvirt\'s live XML instead; retrying every 60 s',
    ]);
    const vm = s.world.vms[0]!;
    vm.ports = vm.ports.map((p) => (p.kind === "serial" ? { ...p, guestOpen: false } : p));
    await s.watcher.tick();
    expect(s.take()).toEqual([]);
    vm.ports = vm.ports.map((p) => (p.id === "port-a" ? { ...p, guestOpen: true } : p));
    await s.watcher.tick();
    expect(s.take()).toEqual([ch("guest-opened", "org.a", "port-a", "/run/vm1/a.sock", "libvirt")]);
  });

  test("a busy QMP socket and no libvirt: says that guest open/close cannot be watched", async () => {
    const s = scene({ qmp: "busy" });
    await s.watcher.tick();
    await s.settle();
    expect(s.notes).toHaveLength(1);
    expect(s.notes[0]).toContain("guest open/close of its ports cannot be watched (VMs starting and stopping and their ports still are)");
  });

  test("the filter limits the watch to one VM, and discovery notes are said once", async () => {
    const s = scene({ qmp: "none" });
    s.world.notes.push("cannot read /proc/77/cmdline: permission denied");
    const other: HostVm = { ...s.world.vms[0]!, name: "other", pid: 99 };
    const w = new HostWatcher({
      emit: () => {},
      note: (n) => s.notes.push(n),
      filter: (vm) => vm.name === "vm1",
      discover: async (o) => ({ vms: [s.world.vms[0]!, other].filter((v) => o.filter?.(v) ?? true), notes: s.world.notes }),
      probe: always,
    });
    await w.tick();
    await w.tick();
    expect(w.vms.map((v) => v.name)).toEqual(["vm1"]);
    expect(s.notes).toEqual(["cannot read /proc/77/cmdline: permission denied"]);
  });

  test("events for one port that arrive faster than they are handled: only the latest state counts", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    const qmp = s.clients[0]!;
    for (let i = 0; i < 50; i++) {
      qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: false });
      qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: true });
    }
    await s.settle();
    const got = s.take();
    expect(got, `what I saw: ${JSON.stringify(got)}`).toEqual([ch("guest-opened", "org.a", "port-a", "/run/vm1/a.sock", "qmp-event")]);
    s.watcher.close();
  });

  test("a QMP peer flooding events is dropped once, with a note; its ports' guest state becomes unknown", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    const qmp = s.clients[0]!;
    qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: true });
    await s.settle();
    s.take();
    for (let i = 0; i < maxEventsPerSecond(3) + 10; i++) qmp.fire("VSERPORT_CHANGE", { id: "port-a", open: i % 2 === 0 });
    await s.settle();
    expect(qmp.closed).toBe(true);
    expect(s.notes.filter((n) => /dropped the QMP peer/.test(n)), `what I saw: ${JSON.stringify(s.notes)}`).toEqual([
      `VM "vm1" (pid 4242): dropped the QMP peer at /run/vm1/qmp.sock: it floods (over ${maxEventsPerSecond(3)} events within 1 s (QEMU sends at most one VSERPORT_CHANGE per port per second)); the guest open/close state of its ports is unknown from now on`,
    ]);
    // Not reconnected: the next rounds leave it dropped.
    await s.watcher.tick();
    await s.settle();
    expect(s.clients.length).toBe(1);
    s.watcher.close();
  });

  test("events for ever more ids that are no port are not queued without bound: the peer is dropped", async () => {
    const s = scene({ delayMs: 1 });
    await s.watcher.tick();
    await s.settle();
    const qmp = s.clients[0]!;
    for (let i = 0; i < maxPendingIds(3) + 5; i++) qmp.fire("VSERPORT_CHANGE", { id: `ghost${i}`, open: true });
    await s.settle();
    expect(qmp.closed).toBe(true);
    expect(s.notes, `what I saw: ${JSON.stringify(s.notes)}`).toContain(
      `VM "vm1" (pid 4242): dropped the QMP peer at /run/vm1/qmp.sock: it floods (events for over ${maxPendingIds(3)} unhandled device ids at once); the guest open/close state of its ports is unknown from now on`,
    );
    s.watcher.close();
  });

  test("an event with a megabyte-long device id is ignored: nothing queued, nothing printed", async () => {
    const s = scene();
    await s.watcher.tick();
    await s.settle();
    const qmp = s.clients[0]!;
    const calls = qmp.calls.length;
    for (let i = 0; i < 50; i++) qmp.fire("VSERPORT_CHANGE", { id: `${i}`.padEnd(1024 * 1024, "x"), open: true });
    qmp.fire("DEVICE_DELETED", { device: "d".repeat(1024 * 1024), path: "/machine/peripheral-anon/" + "p".repeat(1024 * 1024) });
    await s.settle();
    expect(s.take()).toEqual([]);
    expect(qmp.calls.length, `what I saw: ${qmp.calls.slice(calls).join(", ")}`).toBe(calls);
    expect(qmp.closed).toBe(false);
    s.watcher.close();
  });
});
