/**
 * The guest part of the benchmark: `vmchan send`/`cat` against busybox `dd` on the same port of a real
 * guest (test/lab, QEMU under TCG), both directions. Numbers under TCG are an order of magnitude below
 * the host relay's; they are reported, not tuned.
 *
 * Timing, all on the host clock:
 * - guest → host: the host reads the port's chardev socket and times its first byte to its last, so the
 *   guest program's start-up is not counted (it is reported separately).
 * - host → guest: from the moment the guest reader has the port open and the host is connected (QEMU's
 *   VSERPORT_CHANGE open:true timestamp, or the connect if later) to the guest reader's exit as the lab
 *   agent reports it; that adds the agent's latency (measured with `true`, reported) to every run.
 */
import type * as net from "node:net";
import { guestBinary, Lab } from "../test/lab/lab.ts";
import { MiB, type Stat, stat } from "./harness.ts";

export interface GuestResults {
  bootMs: number;
  qemu: string;
  bytes: number;
  /** MiB/s per tool and direction. */
  toHost: { vmchan: Stat; dd: Stat };
  toGuest: { vmchan: Stat; dd: Stat };
  /** `vmchan --version` wall time in the guest, ms (/proc/uptime, 10 ms resolution). */
  startupMs: Stat;
  /** Round trip of the lab agent running `true`, ms: the error bar of the host → guest figures. */
  agentMs: Stat;
}

const portName = "bench.port";
const now = () => performance.timeOrigin + performance.now();

export async function guestBench(opts: { runs: number; bytes: number; log: (s: string) => void }): Promise<GuestResults> {
  const { runs, bytes, log } = opts;
  const lab = await Lab.boot({ name: "vmchan-bench", ports: [{ name: portName }] });
  try {
    const port = lab.ports[0]!;
    const dev = (await lab.run(`grep -l '^${portName}$' /sys/class/virtio-ports/*/name`)).stdout.trim().split("/")[4];
    if (!dev) throw new Error(`the guest shows no port named ${portName}`);
    const device = `/dev/${dev}`;
    const qemu = (lab.qmp.greeting as { version?: { qemu?: { major: number; minor: number; micro: number } } }).version?.qemu;
    const prep = await lab.run(`head -c ${bytes} /dev/zero > /tmp/bench.bin && wc -c < /tmp/bench.bin`);
    if (Number(prep.stdout.trim()) !== bytes) throw new Error(`cannot make the guest's test file: ${prep.stderr}`);

    const agentMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = now();
      await lab.run("true");
      agentMs.push(now() - t);
    }
    const startupMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await lab.run(`a=$(cut -d' ' -f1 /proc/uptime); ${guestBinary} --version >/dev/null; b=$(cut -d' ' -f1 /proc/uptime); echo $a $b`);
      const [a, b] = r.stdout.trim().split(" ").map(Number);
      startupMs.push((b! - a!) * 1000);
    }

    const toHost = { vmchan: [] as number[], dd: [] as number[] };
    const toGuest = { vmchan: [] as number[], dd: [] as number[] };
    const senders = {
      vmchan: `${guestBinary} send ${portName} /tmp/bench.bin`,
      dd: `dd if=/tmp/bench.bin of=${device} bs=32768 2>/dev/null`,
    };
    const readers = {
      vmchan: `${guestBinary} cat --bytes ${bytes} ${portName} > /dev/null`,
      dd: `dd if=${device} of=/dev/null bs=4096 count=${bytes / 4096} iflag=fullblock 2>/dev/null`,
    };
    for (let i = 0; i < runs; i++) {
      for (const tool of ["vmchan", "dd"] as const) {
        log(`  guest → host, ${tool}, run ${i + 1}/${runs}`);
        toHost[tool].push(await guestToHost(lab, senders[tool], bytes));
        // QEMU rate-limits VSERPORT_CHANGE to one per second per port: keep runs apart.
        await Bun.sleep(1500);
        log(`  host → guest, ${tool}, run ${i + 1}/${runs}`);
        toGuest[tool].push(await hostToGuest(lab, port.id, readers[tool], tool === "vmchan", bytes));
        await Bun.sleep(1500);
      }
    }
    return {
      bootMs: lab.bootMs,
      qemu: qemu ? `${qemu.major}.${qemu.minor}.${qemu.micro}` : "unknown",
      bytes,
      toHost: { vmchan: stat(toHost.vmchan), dd: stat(toHost.dd) },
      toGuest: { vmchan: stat(toGuest.vmchan), dd: stat(toGuest.dd) },
      startupMs: stat(startupMs),
      agentMs: stat(agentMs),
    };
  } finally {
    await lab.close();
  }
}

/** The host reads the port socket while `script` writes `bytes` in the guest; MiB/s from first to last byte. */
async function guestToHost(lab: Lab, script: string, bytes: number): Promise<number> {
  const sock = await lab.connect(portName);
  try {
    let got = 0;
    let first = 0;
    let last = 0;
    const all = new Promise<void>((resolve, reject) => {
      sock.on("data", (chunk: Buffer) => {
        if (got === 0) first = now();
        got += chunk.byteLength;
        last = now();
        if (got >= bytes) resolve();
      });
      sock.on("close", () => reject(new Error(`the port socket closed after ${got} of ${bytes} bytes`)));
    });
    all.catch(() => {});
    const r = await lab.run(script, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`guest "${script}" failed (${r.code}): ${r.stderr.trim()}`);
    await Promise.race([all, Bun.sleep(30_000).then(() => Promise.reject(new Error(`only ${got} of ${bytes} bytes reached the host`)))]);
    return bytes / MiB / ((last - first) / 1000);
  } finally {
    sock.destroy();
  }
}

/**
 * `script` reads `bytes` from the port in the guest while the host writes them. `opensFirst`: the reader
 * opens the port and waits for a host (vmchan cat), so it is started before the host connects; otherwise
 * (dd, whose read returns 0 while no host is connected) the host connects first.
 */
async function hostToGuest(lab: Lab, id: string, script: string, opensFirst: boolean, bytes: number): Promise<number> {
  const opened = lab.qmp.waitEvent("VSERPORT_CHANGE", (d) => d.id === id && d.open === true, 30_000);
  opened.catch(() => {});
  let sock: net.Socket | null = null;
  let connectedAt = 0;
  const connect = async () => {
    sock = await lab.connect(portName);
    connectedAt = now();
  };
  try {
    let job;
    if (opensFirst) {
      job = await lab.spawn(script);
      await opened; // the reader has started and holds the port
      await connect();
    } else {
      await connect();
      job = await lab.spawn(script);
    }
    const ev = await opened;
    const ts = ev.timestamp as { seconds: number; microseconds: number };
    const t0 = Math.max(connectedAt, ts.seconds * 1000 + ts.microseconds / 1000);
    const block = Buffer.alloc(MiB);
    const s = sock as unknown as net.Socket;
    for (let sent = 0; sent < bytes; sent += block.byteLength) {
      if (!s.write(block.subarray(0, Math.min(block.byteLength, bytes - sent))))
        await new Promise<void>((resolve) => s.once("drain", resolve));
    }
    const r = await job.wait({ timeoutMs: 120_000 });
    const t1 = now();
    if (r.code !== 0) throw new Error(`guest "${script}" failed (${r.code}): ${r.stderr.trim()}`);
    return bytes / MiB / ((t1 - t0) / 1000);
  } finally {
    (sock as net.Socket | null)?.destroy();
  }
}
