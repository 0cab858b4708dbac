import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { discoverHosts } from "../../lib/host/discover.ts";
import { hostPort, type HostDiscovery, type HostVm } from "../../lib/host/model.ts";

// A real QEMU with no guest at all (-S, no kernel): enough for QEMU's own view of its ports.
const dir = mkdtempSync(join(tmpdir(), "vmchan-qemu-"));
const qmpSock = join(dir, "qmp.sock");
const aSock = join(dir, "a.sock");
const bcSock = join(dir, "b,c.sock");
let qemu: ReturnType<typeof Bun.spawn> | undefined;
let stderr = "";
const clients: net.Socket[] = [];

// Last resort if the runner dies before afterAll: never leave a QEMU behind.
const killQemu = () => qemu?.exitCode === null && qemu.kill("SIGKILL");
process.once("exit", killQemu);

/** Polls `check` every 50 ms until it returns a value, or fails after `ms` saying what it waited for. */
async function until<T>(what: string, ms: number, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (qemu?.exitCode !== null) throw new Error(`QEMU exited (${qemu?.exitCode}) while waiting for ${what}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** Our VM in a fresh discovery (other QEMUs on this machine are ignored: match by pid). */
async function ourVm(opts: { useQmp?: boolean } = {}): Promise<{ d: HostDiscovery; vm: HostVm }> {
  const d = await discoverHosts({ libvirtDirs: [], timeoutMs: 2000, ...opts });
  const vm = d.vms.find((v) => v.pid === qemu!.pid);
  if (!vm) throw new Error(`QEMU pid ${qemu!.pid} not discovered; notes: ${d.notes.join("; ")}`);
  return { d, vm };
}

beforeAll(async () => {
  qemu = Bun.spawn(
    [
      "qemu-system-x86_64", "-accel", "tcg", "-S", "-display", "none", "-nodefaults", "-name", "testvm",
      "-qmp", `unix:${qmpSock},server=on,wait=off`,
      "-device", "virtio-serial-pci,id=vs0",
      "-chardev", `socket,id=c1,path=${aSock},server=on,wait=off`,
      "-device", "virtserialport,bus=vs0.0,chardev=c1,name=org.example.a,id=pa",
      "-chardev", `socket,id=c2,path=${bcSock.replaceAll(",", ",,")},server=on,wait=off`,
      "-device", "virtconsole,chardev=c2,name=con0,id=pc",
    ],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  void new Response(qemu.stderr as ReadableStream).text().then((t) => (stderr = t));
  await until("QEMU's sockets", 10_000, () => ([qmpSock, aSock, bcSock].every((p) => existsSync(p)) ? true : undefined));
}, 15_000);

afterAll(async () => {
  for (const c of clients) c.destroy();
  if (qemu && qemu.exitCode === null) {
    qemu.kill("SIGTERM");
    const exited = await Promise.race([qemu.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
    if (!exited) {
      qemu.kill("SIGKILL");
      await Promise.race([qemu.exited, Bun.sleep(3000)]);
    }
  }
  process.removeListener("exit", killQemu);
  rmSync(dir, { recursive: true, force: true });
}, 10_000);

describe("host discovery against a real QEMU", () => {
  test("finds the VM, its ports, paths with the comma unescaped, and QMP state", async () => {
    const { vm } = await ourVm();
    expect(vm).toEqual({
      name: "testvm",
      pid: qemu!.pid,
      uuid: null,
      sources: ["cmdline", "qmp"],
      qmp: [qmpSock],
      startedPaused: true,
      running: false,
      ports: [
        hostPort({
          kind: "serial", name: "org.example.a", id: "pa", chardev: "c1", bus: "vs0.0", nr: 1,
          backend: "unix", qemuBackend: "socket", path: aSock, mode: "connect", guestOpen: false, held: false,
        }),
        // QMP says frontend-open=true for the console although no guest runs: guestOpen stays null.
        hostPort({
          kind: "console", name: "con0", id: "pc", chardev: "c2", bus: "vs0.0", nr: 0,
          backend: "unix", qemuBackend: "socket", path: bcSock, mode: "connect", guestOpen: null, held: false,
        }),
      ],
    });
  }, 10_000);

  test("discovery leaves the QMP socket free for the next client", async () => {
    await ourVm();
    const { vm, d } = await ourVm();
    expect(vm.sources).toContain("qmp");
    expect(d.notes.filter((n) => n.includes(qmpSock))).toEqual([]);
  }, 10_000);

  test("a client connected to a port's socket shows as held, through QMP and through /proc", async () => {
    const client = net.createConnection({ path: aSock });
    clients.push(client);
    await new Promise<void>((resolve, reject) => client.once("connect", resolve).once("error", reject));
    // QEMU accepts from its main loop: wait (bounded) until it has.
    const held = await until("QEMU to accept the client", 5000, async () => {
      const { vm } = await ourVm();
      return vm.ports[0]!.held ? vm : undefined;
    });
    expect(held.ports.map((p) => [p.name, p.held, p.guestOpen])).toEqual([
      ["org.example.a", true, false],
      ["con0", false, null],
    ]);
    const { vm: procOnly } = await ourVm({ useQmp: false });
    expect(procOnly.sources).toEqual(["cmdline"]);
    expect(procOnly.ports.map((p) => [p.name, p.held, p.guestOpen])).toEqual([
      ["org.example.a", true, null],
      ["con0", false, null],
    ]);
  }, 15_000);
});
