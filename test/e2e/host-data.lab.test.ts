/**
 * The host half of the data path: the compiled binary on the host talking to a real QEMU's port
 * sockets, with vmchan in the guest on the other end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PortsListing } from "../../lib/schema.ts";
import { Lab } from "../lab/lab.ts";
import { VMCHAN } from "../support/binary.ts";
import { randomBytes, sha256 } from "../support/host-io.ts";
import { memorySampler } from "../support/proc-stats.ts";
import { expectExit } from "../support/guest.ts";

const MiB = 1024 * 1024;
let lab: Lab;

beforeAll(async () => {
  lab = await Lab.boot({
    name: "vmchan-host-data",
    // QMP serves one client at a time and the lab holds the first socket: a second one for vmchan.
    extraQmp: true,
    ports: [{ name: "h.follow" }, { name: "h.in" }, { name: "h.out" }, { name: "h.client", mode: "client" }, { name: "h.con", kind: "console" }, { name: "h.flood" }, { name: "h.open" }, { name: "h.nobody" }],
  });
}, 180_000);

afterAll(async () => {
  await lab?.close();
}, 60_000);

/** Runs the host binary; resolves with code, stdout bytes and stderr. */
async function host(args: string[], opts: { stdin?: Uint8Array; timeoutMs?: number } = {}) {
  const proc = Bun.spawn([VMCHAN, ...args], {
    stdin: opts.stdin ? new Blob([opts.stdin]) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout: Buffer.from(out), stderr: err };
}

/** Waits until QEMU shows a client on the port's server socket (query-chardev drops its "disconnected:" prefix). */
async function waitHostClient(port: string, timeoutMs = 30_000): Promise<void> {
  const id = lab.ports.find((p) => p.name === port)!.id;
  let last = "";
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await Bun.sleep(100)) {
    const chardevs = await lab.qmp.execute<Array<{ label: string; filename: string }>>("query-chardev");
    last = chardevs.find((c) => c.label === `ch-${id}`)?.filename ?? "(no such chardev)";
    if (!last.startsWith("disconnected:")) return;
  }
  throw new Error(`no host client on ${port} within ${timeoutMs} ms; QEMU shows ${last}`);
}

async function guestSha(path: string): Promise<string> {
  const r = await lab.run(`sha256sum ${path}`);
  expectExit(lab, r, 0);
  return r.stdout.split(/\s+/)[0]!;
}

describe("host discovery of a real QEMU", () => {
  test("ports list finds the lab VM by its -name with every port, path, kind and mode as on its command line", async () => {
    const r = await host(["ports", "list", "--json", "--no-qmp", "--vm", "vmchan-host-data"]);
    expectExit(lab, r, 0);
    const listing = PortsListing.parse(JSON.parse(r.stdout.toString()));
    expect(listing.host.vms.map((v) => [v.name, v.pid])).toEqual([["vmchan-host-data", lab.qemuPid]]);
    const ports = listing.host.vms[0]!.ports.filter((p) => p.name !== "org.vmchan.lab.control");
    expect(ports.map((p) => [p.name, p.kind, p.id, p.path, p.mode, p.backend])).toEqual(
      lab.ports.map((p) => [p.name, p.kind, p.id, p.path, p.mode === "server" ? "connect" : "listen", "unix"]),
    );
  }, 60_000);

  test("guest-open (from QMP) turns true while a guest process has the port open, and false after", async () => {
    const guestOpen = async () => {
      const r = await host(["ports", "list", "--json", "--vm", "vmchan-host-data"]);
      expectExit(lab, r, 0);
      const vm = PortsListing.parse(JSON.parse(r.stdout.toString())).host.vms[0]!;
      expect(vm.sources).toContain("qmp");
      return vm.ports.find((p) => p.name === "h.open")!.guestOpen;
    };
    expect(await guestOpen()).toBe(false);
    const job = await lab.spawn("exec vmchan cat --follow h.open > /dev/null");
    let open: boolean | null = false;
    for (let i = 0; i < 50 && open !== true; i++) {
      open = await guestOpen();
      if (open !== true) await Bun.sleep(200);
    }
    expect(open).toBe(true);
    await job.kill("TERM");
    await job.wait({ timeoutMs: 10_000 });
    for (let i = 0; i < 50 && open !== false; i++) {
      open = await guestOpen();
      if (open !== false) await Bun.sleep(200);
    }
    expect(open).toBe(false);
  }, 60_000);

  test("cat and send by VM:NAME resolve the socket through discovery", async () => {
    // The guest reader opens the port seconds after the host has sent: send must hold on until QEMU has handed the
    // bytes over (it reads the socket only once the port is open), and then linger, or they are lost.
    const job = await lab.spawn("sleep 3; vmchan cat h.in > /tmp/byname.txt");
    const sent = await host(["send", "--data", "by name\n", "vmchan-host-data:h.in"]);
    expect(sent.stderr).toBe("");
    expectExit(lab, sent, 0);
    expectExit(lab, await job.wait({ timeoutMs: 30_000 }), 0);
    expect((await lab.run("cat /tmp/byname.txt")).stdout).toBe("by name\n");
    const wrong = await host(["cat", "vmchan-host-data:h.inn"]);
    expectExit(lab, wrong, 3);
    expect(wrong.stderr).toContain('no port named "h.inn" in VM "vmchan-host-data"');
    expect(wrong.stderr).toContain('did you mean "h.in"?');
  }, 60_000);

  test("a host send to a port no guest process opens fails with the timeout code and says the bytes are lost", async () => {
    // QEMU leaves the bytes in the socket while the guest has the port closed (facts (m)): closing would drop them.
    const sent = await host(["send", "--data", "nobody reads this\n", "vmchan-host-data:h.nobody"], { timeoutMs: 90_000 });
    expectExit(lab, sent, 7);
    expect(sent.stderr).toMatch(/^vmchan: cannot finish writing to "vmchan-host-data:h\.nobody": the peer did not take the last \d+ bytes within 30 s; they are lost \(hint: .+\)\n$/);
  }, 120_000);
});

describe("host cat and send against a real QEMU (unix:PATH)", () => {
  test("20 successive host sends of 1 MiB into a guest cat --follow: every byte arrives", async () => {
    const job = await lab.spawn("vmchan cat --follow h.follow > /tmp/follow.bin");
    const whole = createHash("sha256");
    const file = join(lab.dir, "chunk.bin");
    for (let i = 0; i < 20; i++) {
      const chunk = randomBytes(MiB, 100 + i);
      whole.update(chunk);
      writeFileSync(file, chunk);
      const r = await host(["send", `unix:${lab.socketPath("h.follow")}`, file]);
      expect(r.stderr).toBe("");
      expectExit(lab, r, 0);
    }
    rmSync(file);
    const size = await lab.run("wc -c < /tmp/follow.bin");
    expect(Number(size.stdout.trim())).toBe(20 * MiB);
    expect(await guestSha("/tmp/follow.bin")).toBe(whole.digest("hex"));
    await job.kill("TERM");
    await job.wait({ timeoutMs: 10_000 });
    await lab.run("rm -f /tmp/follow.bin");
  }, 300_000);

  test("16 MiB host send to guest cat, and guest send to host cat, sha256 equal both ways", async () => {
    const data = randomBytes(16 * MiB, 7);
    const file = join(lab.dir, "in.bin");
    writeFileSync(file, data);
    const job = await lab.spawn("vmchan cat h.in > /tmp/in.bin");
    const sent = await host(["send", `unix:${lab.socketPath("h.in")}`, file]);
    rmSync(file);
    expectExit(lab, sent, 0);
    expectExit(lab, await job.wait({ timeoutMs: 60_000 }), 0);
    expect(await guestSha("/tmp/in.bin")).toBe(sha256(data));

    const prep = await lab.run("head -c 16777216 /dev/urandom > /tmp/out.bin && sha256sum /tmp/out.bin");
    // No wait for the reader to connect: the guest's send blocks until a host is there.
    const reader = host(["cat", "--bytes", "16M", `unix:${lab.socketPath("h.out")}`]);
    const guestSend = await lab.run("vmchan send h.out /tmp/out.bin", { timeoutMs: 120_000 });
    expectExit(lab, guestSend, 0);
    const got = await reader;
    expectExit(lab, got, 0);
    expect(got.stdout.length).toBe(16 * MiB);
    expect(sha256(got.stdout)).toBe(prep.stdout.split(/\s+/)[0]!);
    await lab.run("rm -f /tmp/in.bin /tmp/out.bin");
  }, 300_000);

  test("a second host client on a held socket is refused with the busy code", async () => {
    const first = Bun.spawn([VMCHAN, "cat", `unix:${lab.socketPath("h.out")}`], { stdout: "ignore", stderr: "pipe" });
    await waitHostClient("h.out");
    const second = await host(["cat", `unix:${lab.socketPath("h.out")}`], { timeoutMs: 10_000 });
    first.kill("SIGTERM");
    await first.exited;
    expectExit(lab, second, 4);
    expect(second.stderr).toBe(
      `vmchan: cannot connect to "unix:${lab.socketPath("h.out")}": another client already holds ${lab.socketPath("h.out")} (hint: QEMU serves one client per port socket; stop the other client (libvirt holds org.qemu.guest_agent.0))\n`,
    );
  }, 60_000);

  test("a client-mode chardev reaches host listen, and data flows both ways", async () => {
    const path = lab.socketPath("h.client");
    const listener = Bun.spawn([VMCHAN, "listen", `unix:${path}`], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    // QEMU retries every second; the guest's cat then sees a host.
    const job = await lab.spawn("vmchan cat --bytes 6 h.client");
    listener.stdin.write("hello\n");
    await listener.stdin.flush();
    const r = await job.wait({ timeoutMs: 30_000 });
    expectExit(lab, r, 0);
    expect(r.stdout).toBe("hello\n");
    const back = await lab.run("vmchan send --data 'from guest' h.client", { timeoutMs: 30_000 });
    expectExit(lab, back, 0);
    const reader = listener.stdout.getReader();
    let text = "";
    const deadline = Date.now() + 10_000;
    while (!text.includes("from guest") && Date.now() < deadline) {
      const { value, done } = await Promise.race([reader.read(), Bun.sleep(1000).then(() => ({ value: undefined, done: false }))]);
      if (done) break;
      if (value) text += Buffer.from(value).toString();
    }
    listener.kill("SIGTERM");
    await listener.exited;
    expect(text).toBe("from guest");
    const mode = (await Bun.file(path).exists()) ? (await import("node:fs")).statSync(path).mode & 0o777 : -1;
    expect([0o600, -1]).toContain(mode);
  }, 60_000);

  test("a guest flooding its port while the host reads slowly (40 MB/s): host memory stays under 64 MiB, every byte arrives", async () => {
    const total = 128 * MiB;
    const reader = Bun.spawn([VMCHAN, "cat", "--bytes", String(total), `unix:${lab.socketPath("h.flood")}`], { stdout: "pipe", stderr: "pipe" });
    const guest = await lab.spawn(`head -c ${total} /dev/zero | vmchan send h.flood`);
    // VmHWM is the kernel's own high-water mark, so sampling it misses no short peak; the sampler keeps the last
    // reading taken while the process was alive (an exited, unreaped process has no memory lines).
    const memory = memorySampler(reader.pid);
    let got = 0;
    let nonZero = 0;
    const started = performance.now();
    const r = reader.stdout.getReader();
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      got += value.length;
      for (let i = 0; i < value.length; i += 4096) if (value[i] !== 0) nonZero++;
      // Throttle to 40 MB/s: sleep until the byte count is back on schedule.
      const ahead = got / 40e6 - (performance.now() - started) / 1000;
      if (ahead > 0) await Bun.sleep(ahead * 1000);
    }
    const peakRss = memory.stop();
    expect(await reader.exited).toBe(0);
    expectExit(lab, await guest.wait({ timeoutMs: 60_000 }), 0);
    expect(got).toBe(total);
    expect(nonZero).toBe(0);
    console.log(`guest flood, host reading at 40 MB/s: host vmchan RSS peaked at ${(peakRss / MiB).toFixed(1)} MiB over ${total / MiB} MiB`);
    expect(peakRss).toBeGreaterThan(0); // it was measured at all
    expect(peakRss).toBeLessThan(64 * MiB);
  }, 180_000);
});
