import { afterEach, describe, expect, test } from "bun:test";
import { renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { GuestWatchEvent } from "../../lib/watch/event.ts";
import { GuestWatcher, type GuestChange } from "../../lib/watch/guest-watcher.ts";
import { FixtureRoot } from "../support/fixture.ts";

let fx: FixtureRoot;
afterEach(() => fx?.dispose());

/** A debugfs entry as the kernel writes it. */
function debug(connected: 0 | 1) {
  return { guest_connected: 0, host_connected: connected, outvq_full: 0, bytes_sent: 0, bytes_received: 0, bytes_discarded: 0, is_console: "no", console_vtermno: 0 };
}

function setHost(port: string, name: string, connected: 0 | 1) {
  fx.file(
    `/sys/kernel/debug/virtio-ports/${port}`,
    Object.entries({ name, ...debug(connected) })
      .map(([k, v]) => `${k}: ${v}\n`)
      .join(""),
  );
}

function removePort(port: string, name: string) {
  rmSync(join(fx.root, "sys/class/virtio-ports", port), { recursive: true, force: true });
  rmSync(join(fx.root, "sys/kernel/debug/virtio-ports", port), { force: true });
  rmSync(join(fx.root, "dev", port), { force: true });
  rmSync(join(fx.root, "dev/virtio-ports", name), { force: true });
}

/** A watcher on the fixture with a clock the test moves. */
function watcher(graceMs = 2000) {
  const clock = { t: 1_000_000 };
  const w = new GuestWatcher(fx.root, { now: () => clock.t, nameGraceMs: graceMs });
  const poll = (advanceMs = 250): GuestChange[] => {
    clock.t += advanceMs;
    const { changes } = w.poll();
    // Every change is a valid event once stamped.
    for (const c of changes) GuestWatchEvent.parse({ time: new Date(clock.t).toISOString(), ...c });
    return changes;
  };
  return { w, poll, clock };
}

const ev = (event: GuestChange["event"], port: string | null, device: string, via: GuestChange["via"] = event.startsWith("host") ? "debugfs" : "sysfs"): GuestChange => ({
  side: "guest",
  event,
  port,
  device,
  via,
});

describe("guest watcher", () => {
  test("ports present when watching begins are recorded, not reported", () => {
    fx = new FixtureRoot().port("vport0p1", "org.a", { debug: debug(1) }).port("vport0p2", "org.b", { debug: debug(0) });
    const { w, poll } = watcher();
    expect(poll()).toEqual([]);
    expect(w.portCount).toBe(2);
    expect(poll()).toEqual([]);
  });

  test("a port that appears with its name is reported added; its removal is reported with the name", () => {
    fx = new FixtureRoot().port("vport0p1", "org.a", { debug: debug(0) });
    const { poll } = watcher();
    poll();
    fx.port("vport0p2", "org.new", { debug: debug(0) });
    expect(poll()).toEqual([ev("port-added", "org.new", "/dev/vport0p2")]);
    expect(poll()).toEqual([]);
    removePort("vport0p2", "org.new");
    expect(poll()).toEqual([ev("port-removed", "org.new", "/dev/vport0p2")]);
  });

  test("a port whose name appears late is reported once, with the name, when the name appears", () => {
    fx = new FixtureRoot().dir("/sys/class/virtio-ports").dir("/sys/kernel/debug/virtio-ports");
    const { poll } = watcher();
    expect(poll()).toEqual([]);
    // The kernel's "add" uevent: the sysfs entry and debugfs exist, the name file does not yet (facts (f)).
    fx.dir("/sys/class/virtio-ports/vport0p2");
    setHost("vport0p2", "", 0);
    expect(poll()).toEqual([]);
    fx.file("/sys/class/virtio-ports/vport0p2/name", "org.late\n");
    expect(poll()).toEqual([ev("port-added", "org.late", "/dev/vport0p2")]);
    expect(poll()).toEqual([]);
  });

  test("a port that never gets a name is reported with name null after the grace time", () => {
    fx = new FixtureRoot().dir("/sys/class/virtio-ports").dir("/sys/kernel/debug/virtio-ports");
    const { poll } = watcher(1000);
    poll();
    fx.dir("/sys/class/virtio-ports/vport0p3");
    expect(poll(250)).toEqual([]);
    expect(poll(500)).toEqual([]);
    expect(poll(500)).toEqual([ev("port-added", null, "/dev/vport0p3")]);
    // The name arriving after that is kept for the removal.
    fx.file("/sys/class/virtio-ports/vport0p3/name", "org.slow\n");
    expect(poll()).toEqual([]);
    removePort("vport0p3", "org.slow");
    expect(poll()).toEqual([ev("port-removed", "org.slow", "/dev/vport0p3")]);
  });

  test("a nameless port removed within the grace time is reported added and removed", () => {
    fx = new FixtureRoot().dir("/sys/class/virtio-ports").dir("/sys/kernel/debug/virtio-ports");
    const { poll } = watcher();
    poll();
    fx.dir("/sys/class/virtio-ports/vport0p4");
    expect(poll()).toEqual([]);
    removePort("vport0p4", "x");
    expect(poll()).toEqual([ev("port-added", null, "/dev/vport0p4"), ev("port-removed", null, "/dev/vport0p4")]);
  });

  test("host connect and disconnect come from debugfs host_connected", () => {
    fx = new FixtureRoot().port("vport0p1", "org.a", { debug: debug(0) });
    const { poll } = watcher();
    poll();
    setHost("vport0p1", "org.a", 1);
    expect(poll()).toEqual([ev("host-connected", "org.a", "/dev/vport0p1")]);
    expect(poll()).toEqual([]);
    setHost("vport0p1", "org.a", 0);
    expect(poll()).toEqual([ev("host-disconnected", "org.a", "/dev/vport0p1")]);
  });

  test("a new port whose host is already connected is reported added, then connected", () => {
    fx = new FixtureRoot().dir("/sys/class/virtio-ports").dir("/sys/kernel/debug/virtio-ports");
    const { poll } = watcher();
    poll();
    fx.port("vport0p1", "org.c", { debug: debug(1) });
    expect(poll()).toEqual([ev("port-added", "org.c", "/dev/vport0p1"), ev("host-connected", "org.c", "/dev/vport0p1")]);
  });

  test("without debugfs, a port unplugged and plugged again between two polls is reported removed and added (sysfs inode)", () => {
    fx = new FixtureRoot().port("vport0p1", "org.a");
    const { w, poll } = watcher();
    w.poll();
    // Keep the old entry alive under another name so the new directory cannot reuse its inode.
    renameSync(join(fx.root, "sys/class/virtio-ports/vport0p1"), join(fx.root, "old-entry"));
    fx.port("vport0p1", "org.b", { link: false });
    expect(poll()).toEqual([ev("port-removed", "org.a", "/dev/vport0p1"), ev("port-added", "org.b", "/dev/vport0p1")]);
  });

  test("without readable debugfs it says once why connections cannot be watched, and still reports ports", () => {
    fx = new FixtureRoot().port("vport0p1", "org.a");
    const { w, poll } = watcher();
    const first = w.poll();
    expect(first.changes).toEqual([]);
    expect(first.notes).toEqual([
      "host connect/disconnect cannot be watched: /sys/kernel/debug/virtio-ports is not readable (no such file or directory); ports added and removed are still reported (hint: run as root with debugfs mounted: mount -t debugfs none /sys/kernel/debug)",
    ]);
    expect(w.debugfsProblem).toBe("no such file or directory");
    expect(w.poll().notes).toEqual([]);
    fx.port("vport0p2", "org.b");
    expect(poll()).toEqual([ev("port-added", "org.b", "/dev/vport0p2")]);
  });

  test("debugfs becoming readable later gives state, not a burst of events", () => {
    fx = new FixtureRoot().port("vport0p1", "org.a");
    const { poll } = watcher();
    poll();
    setHost("vport0p1", "org.a", 1);
    expect(poll()).toEqual([]);
    setHost("vport0p1", "org.a", 0);
    expect(poll()).toEqual([ev("host-disconnected", "org.a", "/dev/vport0p1")]);
  });

  test("not a guest: no ports, no notes, isGuest false", () => {
    fx = new FixtureRoot();
    const { w } = watcher();
    expect(w.poll()).toEqual({ changes: [], notes: [] });
    expect(w.isGuest).toBe(false);
  });
});
