/**
 * `vmchan ports list` inside a real guest (test/lab): the listing must match the ports on QEMU's command line,
 * name the processes holding a port, and follow the host connecting to a port's socket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type GuestPort, PortsListing } from "../../lib/schema.ts";
import { controlPortName, guestBinary, Lab, type LabPort } from "../lab/lab.ts";
import { expectExit } from "../support/guest.ts";

const long = 120_000;

// nr given explicitly, so the guest devices are known: bus vs0 is the guest's virtio-serial device 0.
const ports: LabPort[] = [
  { name: "org.vmchan.test.console", kind: "console", nr: 0 },
  { name: "org.vmchan.test.a", nr: 1 },
  { name: "org.vmchan.test.b", nr: 3 },
];
const [con, a, b] = ports.map((p) => p.name) as [string, string, string];

async function listPorts(lab: Lab): Promise<GuestPort[]> {
  const r = await lab.run(`${guestBinary} ports list --json`);
  expect(r.stderr).toBe("");
  expectExit(lab, r, 0);
  return PortsListing.parse(JSON.parse(r.stdout)).guest;
}

function byName(listing: GuestPort[], name: string): GuestPort {
  const p = listing.find((x) => x.name === name);
  if (!p) throw new Error(`no port "${name}" in ${JSON.stringify(listing.map((x) => x.name))}`);
  return p;
}

/** Waits (in the guest, bounded) until debugfs shows `host_connected: want` for the port. */
async function waitHostConnected(lab: Lab, port: string, want: 0 | 1): Promise<void> {
  const r = await lab.run(
    `for i in $(seq 100); do grep -qx 'host_connected: ${want}' /sys/kernel/debug/virtio-ports/${port} && exit 0; sleep 0.1; done; cat /sys/kernel/debug/virtio-ports/${port}; exit 1`,
  );
  expect(r.stdout).toBe("");
  expectExit(lab, r, 0);
}

/** Waits (in the guest, bounded) until process `pid` has `device` open as fd 0. */
async function waitHolding(lab: Lab, pid: number, device: string): Promise<void> {
  const r = await lab.run(`for i in $(seq 100); do [ "$(readlink /proc/${pid}/fd/0)" = ${device} ] && exit 0; sleep 0.1; done; exit 1`);
  expectExit(lab, r, 0);
}

/** A port as listed right after boot: nothing connected, nothing sent, no holders. */
function idle(name: string, port: string, over: Partial<GuestPort>): GuestPort {
  return {
    name,
    port,
    device: `/dev/${port}`,
    link: `/dev/virtio-ports/${name}`,
    linkPresent: true,
    kind: "serial",
    console: null,
    hostConnected: false,
    guestConnected: false,
    outvqFull: false,
    bytesSent: 0,
    bytesReceived: 0,
    bytesDiscarded: 0,
    holders: [],
    holdersComplete: true,
    ...over,
  };
}

describe("ports list in a guest with udev-style links", () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await Lab.boot({ ports, links: true, name: "vmchan-lab-ports-list" });
  }, long);
  afterAll(async () => {
    await lab?.close();
  }, long);

  test(
    "lists exactly the ports on the QEMU command line, with devices, kinds and links",
    async () => {
      const listing = await listPorts(lab);
      expect(listing.map((p) => p.name)).toEqual([con, a, b, controlPortName]);
      expect(listing.slice(0, 3)).toEqual([
        // The guest driver reports host_connected 1 and guest_connected 1 for a console port whether or not
        // a host is connected (measured: it stays 1 with no client on the socket): vmchan reports them unknown.
        idle(con, "vport0p0", { kind: "console", console: "/dev/hvc0", hostConnected: null, guestConnected: null }),
        idle(a, "vport0p1", {}),
        idle(b, "vport0p3", {}),
      ]);
      // The harness's own port, on its own bus; the agent holds it open and the host is connected.
      const ctl = byName(listing, controlPortName);
      expect([ctl.port, ctl.device, ctl.kind, ctl.linkPresent, ctl.hostConnected, ctl.guestConnected]).toEqual([
        "vport1p1",
        "/dev/vport1p1",
        "serial",
        true,
        true,
        true,
      ]);
      expect(ctl.holders.map((h) => h.command)).toEqual(["agent", "agent"]);
    },
    long,
  );

  test(
    "names the guest process holding a serial port open, and QEMU reports the open",
    async () => {
      const opened = lab.qmp.waitEvent("VSERPORT_CHANGE", (d) => d.id === "port-org.vmchan.test.b" && d.open === true, 30_000);
      const job = await lab.spawn("exec sleep 300 <>/dev/vport0p3");
      try {
        await waitHolding(lab, job.pid, "/dev/vport0p3");
        expect((await opened).data).toEqual({ id: "port-org.vmchan.test.b", open: true });
        const listing = await listPorts(lab);
        expect(byName(listing, b).holders).toEqual([{ pid: job.pid, command: "sleep" }]);
        expect(byName(listing, b).guestConnected).toBe(true);
        expect(byName(listing, a).holders).toEqual([]);
      } finally {
        await job.kill("TERM");
      }
      expectExit(lab, await job.wait({ timeoutMs: 30_000 }), 128 + 15);
      const after = byName(await listPorts(lab), b);
      expect([after.holders, after.guestConnected]).toEqual([[], false]);
    },
    long,
  );

  test(
    "names the process holding a console port through its /dev/hvc0 tty",
    async () => {
      const job = await lab.spawn("exec sleep 300 <>/dev/hvc0");
      try {
        await waitHolding(lab, job.pid, "/dev/hvc0");
        expect(byName(await listPorts(lab), con).holders).toEqual([{ pid: job.pid, command: "sleep" }]);
      } finally {
        await job.kill("TERM");
      }
      await job.wait({ timeoutMs: 30_000 });
      expect(byName(await listPorts(lab), con).holders).toEqual([]);
    },
    long,
  );

  test(
    "shows the host connected while a client is connected to the port's socket",
    async () => {
      expect(byName(await listPorts(lab), a).hostConnected).toBe(false);
      const sock = await lab.connect(a);
      try {
        await waitHostConnected(lab, "vport0p1", 1);
        const listing = await listPorts(lab);
        expect([byName(listing, a).hostConnected, byName(listing, b).hostConnected]).toEqual([true, false]);
        // QEMU's side agrees: the chardev's filename loses its "disconnected:" prefix.
        const chardevs = await lab.qmp.execute<Array<{ label: string; filename: string }>>("query-chardev");
        expect(chardevs.find((c) => c.label === "ch-port-org.vmchan.test.a")?.filename).toBe(`unix:${lab.socketPath(a)},server=on`);
      } finally {
        // A full close, never end(): QEMU only notices a half-close when the guest opens the port.
        sock.destroy();
      }
      await waitHostConnected(lab, "vport0p1", 0);
      expect(byName(await listPorts(lab), a).hostConnected).toBe(false);
    },
    long,
  );
});

describe("ports list in a guest without udev", () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await Lab.boot({ ports: [{ name: "org.vmchan.test.only" }], links: false });
  }, long);
  afterAll(async () => {
    await lab?.close();
  }, long);

  test(
    "reports the /dev/virtio-ports link as missing, with the port still listed",
    async () => {
      const listing = await listPorts(lab);
      expect(listing.map((p) => p.name)).toEqual(["org.vmchan.test.only", controlPortName]);
      expect(listing[0]).toEqual(idle("org.vmchan.test.only", "vport0p1", { linkPresent: false }));
      const table = await lab.run(`${guestBinary} ports list`);
      expectExit(lab, table, 0);
      expect(table.stdout.split("\n")[1]!.split(/\s{2,}/)).toEqual([
        "org.vmchan.test.only",
        "/dev/vport0p1",
        "missing",
        "serial",
        "disconnected",
        "closed",
        "0",
        "0",
        "-",
      ]);
    },
    long,
  );
});
