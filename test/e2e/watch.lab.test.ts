/**
 * `vmchan ports watch` on both sides of a real guest: in the guest it sees a port hot-plugged and unplugged
 * with QMP and a host connecting and disconnecting; on the host it sees the guest opening and closing a port
 * through QMP events.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { GuestWatchEvent, HostWatchEvent, WatchEvent } from "../../lib/watch/event.ts";
import { Lab } from "../lab/lab.ts";
import { connectUnix } from "../lab/socket.ts";
import { VMCHAN } from "../support/binary.ts";
import { expectExit } from "../support/guest.ts";

let lab: Lab;
const vmName = `vmchan-watch-${process.pid}`;

beforeAll(async () => {
  // A second QMP socket: the lab holds the first, and the host-side watch needs one for events.
  lab = await Lab.boot({ name: vmName, extraQmp: true, ports: [{ name: "w.conn" }, { name: "w.open", id: "w-open" }] });
}, 180_000);

afterAll(async () => {
  await lab?.close();
}, 60_000);

/** Polls `read` until `done` accepts its result; fails after `timeoutMs` with the last result. */
async function waitFor<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(v)}`);
    await Bun.sleep(200);
  }
}

/** The guest watch's events so far, each checked against the schema. */
async function guestEvents(file: string): Promise<GuestWatchEvent[]> {
  const r = await lab.run(`cat ${file}`);
  return r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => GuestWatchEvent.parse(WatchEvent.parse(JSON.parse(l))));
}

const summary = (evs: { event: string; via: string }[]) => evs.map((e) => `${e.event} via ${e.via}`);

describe("ports watch in a real guest", () => {
  test("reports a hot-plugged port, host connects and disconnects, and the unplug, in order", async () => {
    const job = await lab.spawn("exec vmchan ports watch --json > /tmp/watch.jsonl 2> /tmp/watch.err");
    const hotSock = join(lab.dir, "hot.sock");
    let plugged = false;
    try {
      const err = await waitFor("the watching line", () => lab.run("cat /tmp/watch.err").then((r) => r.stdout), (s) => s.includes("watching"));
      // Three ports: the two under test and the lab's control port; debugfs is mounted and readable as root.
      expect(err).toBe(
        "vmchan: watching 3 guest ports (sysfs every 0.5 s, host connections from debugfs) and 0 QEMU VMs on this host (/proc every 1 s, QMP events where a socket answers); Ctrl-C or SIGTERM ends it\n",
      );

      // Hot-plug (facts (f)): the sysfs entry comes first, its name 10-20 ms later.
      await lab.qmp.execute("chardev-add", {
        id: "ch-w-hot",
        backend: { type: "socket", data: { addr: { type: "unix", data: { path: hotSock } }, server: true, wait: false } },
      });
      await lab.qmp.execute("device_add", { driver: "virtserialport", bus: "vs0.0", chardev: "ch-w-hot", name: "w.hot", id: "w-hot" });
      plugged = true;
      const added = await waitFor("port-added of w.hot", () => guestEvents("/tmp/watch.jsonl"), (evs) => evs.some((e) => e.port === "w.hot"));
      const device = added.find((e) => e.port === "w.hot")!.device;
      expect(device).toMatch(/^\/dev\/vport0p\d+$/);

      // A host client on the hot-plugged port, and on a port that was there from the start.
      const hot = await connectUnix(hotSock, 10_000);
      await waitFor("host-connected of w.hot", () => guestEvents("/tmp/watch.jsonl"), (evs) => evs.some((e) => e.port === "w.hot" && e.event === "host-connected"));
      hot.destroy();
      const conn = await lab.connect("w.conn");
      await waitFor("host-connected of w.conn", () => guestEvents("/tmp/watch.jsonl"), (evs) => evs.some((e) => e.port === "w.conn" && e.event === "host-connected"));
      conn.destroy();
      await waitFor("host-disconnected of w.conn", () => guestEvents("/tmp/watch.jsonl"), (evs) => evs.some((e) => e.port === "w.conn" && e.event === "host-disconnected"));

      // Unplug (DEVICE_DELETED about 0.5 s after device_del under TCG), and plug the same port again at once: it
      // gets the same vportNpM, likely between two polls, and must still be seen as removed and added.
      const unplug = async () => {
        const deleted = lab.qmp.waitEvent("DEVICE_DELETED", (d) => d.device === "w-hot", 30_000);
        await lab.qmp.execute("device_del", { id: "w-hot" });
        await deleted;
        plugged = false;
      };
      await unplug();
      await lab.qmp.execute("device_add", { driver: "virtserialport", bus: "vs0.0", chardev: "ch-w-hot", name: "w.hot", id: "w-hot" });
      plugged = true;
      const count = (evs: GuestWatchEvent[], event: string) => evs.filter((e) => e.port === "w.hot" && e.event === event).length;
      await waitFor("the second port-added of w.hot", () => guestEvents("/tmp/watch.jsonl"), (evs) => count(evs, "port-added") === 2);
      await unplug();
      await lab.qmp.execute("chardev-remove", { id: "ch-w-hot" });
      await waitFor("the second port-removed of w.hot", () => guestEvents("/tmp/watch.jsonl"), (evs) => count(evs, "port-removed") === 2);
      await Bun.sleep(1500); // nothing else may follow

      await job.kill("TERM");
      const r = await job.wait({ timeoutMs: 15_000 });
      expectExit(lab, r, 0); // SIGTERM ends a watch with 0

      const evs = await guestEvents("/tmp/watch.jsonl");
      expect(summary(evs.filter((e) => e.port === "w.hot"))).toEqual([
        "port-added via sysfs",
        "host-connected via debugfs",
        "host-disconnected via debugfs",
        "port-removed via sysfs",
        "port-added via sysfs",
        "port-removed via sysfs",
      ]);
      expect(evs.filter((e) => e.port === "w.hot").every((e) => e.device === device)).toBe(true);
      expect(summary(evs.filter((e) => e.port === "w.conn"))).toEqual(["host-connected via debugfs", "host-disconnected via debugfs"]);
      // Nothing about ports nobody touched; times in order.
      expect(evs.every((e) => e.port === "w.hot" || e.port === "w.conn")).toBe(true);
      const times = evs.map((e) => Date.parse(e.time));
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect((await lab.run("cat /tmp/watch.err")).stdout).toBe(err);
    } finally {
      await job.kill("KILL").catch(() => {});
      if (plugged) await lab.qmp.execute("device_del", { id: "w-hot" }).catch(() => {});
    }
  }, 180_000);

  test("idle, the guest watch uses little CPU (figure printed)", async () => {
    const job = await lab.spawn("exec vmchan ports watch > /dev/null 2>&1");
    try {
      // Under TCG the runtime's JIT compiling the code keeps the CPU busy for the first 30-40 s of a watch (about
      // 15% in the first 10 s, falling to about 1% after 40 s): measure after that.
      await Bun.sleep(45_000);
      // The process's own utime+stime (which, unlike a sum over /proc/PID/task, keeps the time of exited JIT threads).
      const cpu = await lab.run(
        `t() { awk '{print $14+$15}' /proc/${job.pid}/stat; }
         a=$(t); sleep 10; b=$(t); echo $((b - a))`,
        { timeoutMs: 60_000 },
      );
      expectExit(lab, cpu, 0);
      const ticks = Number(cpu.stdout.trim()); // clock ticks of 1/100 s: 10 ticks in 10 s = 1% of a CPU
      console.log(`guest ports watch idling: ${ticks} clock ticks (1/100 s) of CPU in 10 s = ${ticks / 10}% of one CPU (TCG)`);
      // About 1% measured (sysfs and debugfs every 0.5 s, the /proc directory every 1 s). A watch that spun or
      // polled every few ms would use hundreds of ticks; 8% leaves room for a TCG guest on a loaded host.
      expect(ticks, cpu.stdout).toBeLessThan(80);
    } finally {
      await job.kill("TERM").catch(() => {});
      await job.wait({ timeoutMs: 15_000 }).catch(() => {});
    }
  }, 180_000);
});

describe("ports watch on the host", () => {
  test("reports the guest opening and closing a port, from QMP events, and ends with 0 on SIGTERM", async () => {
    const extra = lab.extraQmpPath;
    expect(extra).not.toBeNull();
    const proc = Bun.spawn([VMCHAN, "ports", "watch", "--json", "--vm", vmName], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
    let out = "";
    let err = "";
    const decoder = new TextDecoder();
    const pumpOut = (async () => {
      for await (const chunk of proc.stdout) out += decoder.decode(chunk, { stream: true });
    })();
    const pumpErr = (async () => {
      for await (const chunk of proc.stderr) err += decoder.decode(chunk, { stream: true });
    })();
    const hostEvents = () =>
      out
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => HostWatchEvent.parse(WatchEvent.parse(JSON.parse(l))));
    try {
      await waitFor("the watching line", async () => err, (s) => s.includes("watching"));
      expect(err).toContain(`vmchan: watching VM "${vmName}" (running; /proc every 1 s, QMP events where a socket answers); Ctrl-C or SIGTERM ends it\n`);
      // The watch holds the second QMP socket once QEMU shows a client on it (the first is the lab's, busy).
      await waitFor(
        "watch to hold the second QMP socket",
        () => lab.qmp.execute<{ label: string; filename: string }[]>("query-chardev"),
        (list) => list.some((c) => c.filename === `unix:${extra},server=on`),
      );
      await Bun.sleep(1500); // its first poll of the VM's state (not observable from outside; the events below come from QMP either way)

      // VSERPORT_CHANGE is rate-limited per id to one a second and coalesced: transitions 2-3 s apart.
      const dev = `$(for d in /sys/class/virtio-ports/*; do [ "$(cat $d/name)" = w.open ] && echo /dev/\${d##*/}; done)`;
      const held = await lab.run(`exec 3<>${dev}; sleep 3; exec 3>&-`, { timeoutMs: 30_000 });
      expectExit(lab, held, 0);
      await Bun.sleep(2500);
      // cat opens the port, waits 2 s for a host that does not come, and closes it (exit 7).
      const cat = await lab.run("vmchan cat --timeout 2 w.open", { timeoutMs: 30_000 });
      expectExit(lab, cat, 7);
      await waitFor("four open/close events", async () => hostEvents().filter((e) => e.port === "w.open").length, (n) => n >= 4, 15_000);
      await Bun.sleep(1500); // nothing else may follow

      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      await Promise.all([pumpOut, pumpErr]);
      const evs = hostEvents().filter((e) => e.port === "w.open");
      expect(evs.map((e) => `${e.event} via ${e.via}`)).toEqual([
        "guest-opened via qmp-event",
        "guest-closed via qmp-event",
        "guest-opened via qmp-event",
        "guest-closed via qmp-event",
      ]);
      for (const e of evs) {
        expect(e).toMatchObject({ vm: vmName, pid: lab.qemuPid, id: "w-open", path: lab.socketPath("w.open") });
        expect(e.coalesced).toBeUndefined();
      }
      // Only that port changed.
      expect(hostEvents().filter((e) => e.port !== "w.open")).toEqual([]);
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  }, 180_000);
});
