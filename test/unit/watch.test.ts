import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../../lib/exit-codes.ts";
import { formatHumanLine, formatJsonLine, WatchEvent } from "../../lib/watch/event.ts";
import { portsWatch } from "../../lib/watch/watch.ts";
import { fakeContext } from "../support/context.ts";
import { FixtureRoot } from "../support/fixture.ts";

let fx: FixtureRoot;
afterEach(() => fx?.dispose());

const debug = (connected: 0 | 1) => ({ host_connected: connected, guest_connected: 0, is_console: "no" });

/** Waits until `cond` holds, polling every 10 ms, up to 20 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

describe("ports watch", () => {
  test("prints one JSON line per guest event and ends with 0 when stopped", async () => {
    fx = new FixtureRoot().port("vport0p1", "org.a", { debug: debug(0) });
    const ctx = fakeContext(fx.root);
    const stop = new AbortController();
    const run = portsWatch(ctx, { json: true, signal: stop.signal, guestIntervalMs: 20, hostIntervalMs: 50 });
    try {
      await until(() => ctx.stderr.length > 0, "the watching line");
      expect(ctx.stderr).toEqual([
        "vmchan: watching 1 guest port (sysfs every 0.02 s, host connections from debugfs) and 0 QEMU VMs on this host (/proc every 0.05 s, QMP events where a socket answers); Ctrl-C or SIGTERM ends it\n",
      ]);
      fx.port("vport0p2", "org.b", { debug: debug(0) });
      await until(() => ctx.stdout.length === 1, "port-added");
      fx.port("vport0p2", "org.b", { debug: debug(1), link: false });
      await until(() => ctx.stdout.length === 2, "host-connected");
    } finally {
      stop.abort();
    }
    expect(await run).toBe(ExitCode.ok);
    const events = ctx.stdout.map((line) => {
      expect(line.endsWith("\n")).toBe(true);
      return WatchEvent.parse(JSON.parse(line));
    });
    expect(events.map(({ time: _, ...e }) => e)).toEqual([
      { side: "guest", event: "port-added", port: "org.b", device: "/dev/vport0p2", via: "sysfs" },
      { side: "guest", event: "host-connected", port: "org.b", device: "/dev/vport0p2", via: "debugfs" },
    ]);
    expect(Date.parse(events[0]!.time)).toBeGreaterThan(Date.now() - 60_000);
  });

  test("with nothing to watch it says so once and waits", async () => {
    fx = new FixtureRoot();
    const ctx = fakeContext(fx.root);
    const stop = new AbortController();
    const run = portsWatch(ctx, { signal: stop.signal, guestIntervalMs: 20, hostIntervalMs: 20 });
    await until(() => ctx.stderr.length > 0, "the watching line");
    await Bun.sleep(100);
    stop.abort();
    expect(await run).toBe(ExitCode.ok);
    expect(ctx.stdout).toEqual([]);
    expect(ctx.stderr).toEqual([
      "vmchan: watching guest ports (none: /sys/class/virtio-ports is absent, checked every 0.02 s) and 0 QEMU VMs on this host (/proc every 0.02 s, QMP events where a socket answers); Ctrl-C or SIGTERM ends it\n",
    ]);
  });

  test("--vm watches only the host side and says the VM is not running yet", async () => {
    fx = new FixtureRoot().port("vport0p1", "org.a");
    const ctx = fakeContext(fx.root);
    const stop = new AbortController();
    const run = portsWatch(ctx, { vm: "web01", signal: stop.signal, hostIntervalMs: 20 });
    await until(() => ctx.stderr.length > 0, "the watching line");
    stop.abort();
    expect(await run).toBe(ExitCode.ok);
    expect(ctx.stderr).toEqual([
      'vmchan: watching VM "web01" (not running yet; /proc every 0.02 s, QMP events where a socket answers); Ctrl-C or SIGTERM ends it\n',
    ]);
  });

  test("an output whose reader went away ends the watch quietly with code 141", async () => {
    fx = new FixtureRoot().dir("/sys/class/virtio-ports").dir("/sys/kernel/debug/virtio-ports");
    const fifo = join(fx.root, "out.fifo");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const reader = openSync(fifo, "r+");
    const writer = openSync(fifo, "w");
    closeSync(reader);
    const ctx = fakeContext(fx.root);
    const run = portsWatch(ctx, { json: true, outFd: writer, signal: new AbortController().signal, guestIntervalMs: 20, hostIntervalMs: 50 });
    await until(() => ctx.stderr.length > 0, "the watching line");
    fx.port("vport0p1", "org.a", { debug: debug(0) });
    expect(await run).toBe(ExitCode.brokenPipe);
    closeSync(writer);
  });
});

describe("watch event lines", () => {
  const time = "2025-03-04T05:06:07.089Z";
  const clock = (() => {
    const d = new Date(time);
    const p = (n: number, w = 2) => String(n).padStart(w, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  })();

  test("JSON lines keep the schema's fields", () => {
    const ev = WatchEvent.parse({ time, side: "host", event: "guest-opened", vm: "vm1", pid: 4242, port: "org.a", id: "port-a", path: "/run/a.sock", via: "qmp-event" });
    expect(formatJsonLine(ev)).toBe(
      '{"time":"2025-03-04T05:06:07.089Z","side":"host","event":"guest-opened","vm":"vm1","pid":4242,"port":"org.a","id":"port-a","path":"/run/a.sock","via":"qmp-event"}\n',
    );
  });

  test("human lines: time, event, where, details", () => {
    expect(formatHumanLine({ time, side: "guest", event: "port-added", port: "org.a", device: "/dev/vport0p2", via: "sysfs" })).toBe(
      `${clock}  port-added         guest org.a               /dev/vport0p2, via sysfs\n`,
    );
    expect(formatHumanLine({ time, side: "host", event: "vm-started", vm: "vm1", pid: 4242, port: null, id: null, path: null, via: "proc" })).toBe(
      `${clock}  vm-started         vm1                       pid 4242, via proc\n`,
    );
    expect(
      formatHumanLine({ time, side: "host", event: "port-added", vm: null, pid: 7, port: "org.b", id: "b0", path: "/run/b.sock", via: "qmp-poll" }),
    ).toBe(`${clock}  port-added         pid 7:org.b               id b0, socket /run/b.sock, via qmp-poll\n`);
    expect(
      formatHumanLine({ time, side: "host", event: "guest-closed", vm: "vm1", pid: 1, port: "org.a", id: "a", path: null, via: "qmp-event", coalesced: true }),
    ).toBe(`${clock}  guest-closed       vm1:org.a                 pid 1, id a, coalesced: QEMU dropped the opposite change within 1 s, via qmp-event\n`);
  });

  test("control characters in names are escaped in human lines", () => {
    expect(formatHumanLine({ time, side: "guest", event: "port-removed", port: "evil\u001b]0;x\u0007", device: "/dev/vport0p1", via: "sysfs" })).toContain(
      "guest evil\\x1b]0;x\\x07",
    );
  });

  test("the schema refuses an event of the wrong side", () => {
    expect(WatchEvent.safeParse({ time, side: "guest", event: "vm-started", port: null, device: "/dev/x", via: "sysfs" }).success).toBe(false);
  });
});
