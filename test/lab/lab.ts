/**
 * The end-to-end lab: boots a real Linux guest under QEMU (TCG) with real virtio-serial ports, runs commands in it
 * over a separate control port, and gives tests the host side of every port. Nothing here fakes the guest.
 *
 *   const lab = await Lab.boot({ ports: [{ name: "org.example.a" }] });
 *   const r = await lab.run("vmchan ports list --json");
 *   await lab.close();
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QmpClient } from "../../lib/host/qmp.ts";
import { AgentClient, type GuestJob, type RunResult } from "./agent-client.ts";
import { ensurePackages } from "./host-deps.ts";
import { ensureBaseInitramfs, writeInitrd } from "./initramfs.ts";
import { ensureKernel } from "./kernel.ts";
import { controlPortName, type LabPort, qemuArgs, type ResolvedPort, resolvePorts } from "./qemu-args.ts";
import { connectUnix, writeAndClose } from "./socket.ts";
import { startWatchdog, type Watchdog } from "./watchdog.ts";
import { unixListening } from "../support/proc-stats.ts";

export type { GuestJob, LabPort, ResolvedPort, RunResult };
export { controlPortName };
export { guestBinary } from "./initramfs.ts";

const repoRoot = new URL("../..", import.meta.url).pathname;
/** What does not change between runs (kernel, modules, base initramfs); git-ignored. */
export const cacheDir = join(repoRoot, ".lab-cache");

/** Options of Lab.boot. */
export interface LabOptions {
  /** The ports under test, on bus vs0 in this order (guest /dev/vport0pN). */
  ports: LabPort[];
  /** QEMU's -name. Default "vmchan-lab". */
  name?: string;
  /** Make /dev/virtio-ports/NAME links at boot, as udev would. Default false (a bare initramfs has none). */
  links?: boolean;
  /** Guest memory. Default 1024 MiB. */
  memoryMiB?: number;
  /** Limit for the whole boot, until the agent answers. Default 120000 ms. */
  timeoutMs?: number;
  /** The vmchan binary put in the guest at guestBinary. Default dist/vmchan (run `npm run build` first). */
  binary?: string;
  /** Give QEMU a second QMP socket (`extraQmpPath`) for a client under test, since the lab holds the first. Default false. */
  extraQmp?: boolean;
}

// Labs not closed yet: killed synchronously if the process exits without closing them.
const live = new Set<Lab>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const lab of live) lab.killNow();
  });
}

/** A booted guest with its QEMU, QMP connection and command agent. */
export class Lab {
  /** QEMU's -name. */
  readonly name: string;
  /** Temp dir with the sockets, the console log and QEMU's own log; removed by close(). */
  readonly dir: string;
  /** The ports under test with defaults filled in (id, chardev, path, mode). */
  readonly ports: readonly ResolvedPort[];
  /** Milliseconds from starting QEMU to the agent's hello. */
  bootMs = 0;
  readonly #proc: ReturnType<typeof Bun.spawn>;
  #qmp: QmpClient | null = null;
  #agent: AgentClient | null = null;
  #watchdog: Watchdog | null = null;
  #closed = false;

  private constructor(name: string, dir: string, ports: ResolvedPort[], proc: ReturnType<typeof Bun.spawn>) {
    this.name = name;
    this.dir = dir;
    this.ports = ports;
    this.#proc = proc;
  }

  /** Builds what is missing (packages, kernel, initramfs), boots QEMU and waits for the guest agent. */
  static async boot(options: LabOptions): Promise<Lab> {
    const binary = options.binary ?? join(repoRoot, "dist/vmchan");
    if (!existsSync(binary)) throw new Error(`the lab needs the vmchan binary at ${binary}: run 'npm run build' first`);
    await ensurePackages();
    const kernel = await ensureKernel(cacheDir);
    const base = await ensureBaseInitramfs(cacheDir, kernel, binary);

    // Socket paths must fit in 108 bytes: fall back to /tmp when TMPDIR is long.
    const tmp = tmpdir().length > 40 ? "/tmp" : tmpdir();
    const dir = mkdtempSync(join(tmp, "vmchan-lab-"));
    let lab: Lab | null = null;
    try {
      const ports = resolvePorts(options.ports, dir);
      const initrd = join(dir, "initrd.cpio");
      writeInitrd(initrd, base, binary);
      const argv = qemuArgs({
        name: options.name ?? "vmchan-lab",
        memoryMiB: options.memoryMiB ?? 1024,
        kernel: kernel.vmlinuz,
        initrd,
        consoleLog: join(dir, "console.log"),
        qmpSocket: join(dir, "qmp.sock"),
        ...(options.extraQmp && { extraQmpSocket: join(dir, "qmp-extra.sock") }),
        controlSocket: join(dir, "ctl.sock"),
        links: options.links ?? false,
        ports,
      });
      const started = Date.now();
      // Same process group as the test runner: a Ctrl-C reaches QEMU too. The watchdog covers a SIGKILL.
      const proc = Bun.spawn(argv, { cwd: dir, stdin: "ignore", stdout: Bun.file(join(dir, "qemu.log")), stderr: Bun.file(join(dir, "qemu.err")) });
      lab = new Lab(options.name ?? "vmchan-lab", dir, ports, proc);
      live.add(lab);
      installExitHook();
      lab.#watchdog = startWatchdog(proc.pid, dir);
      await lab.#start(options.timeoutMs ?? 120_000);
      lab.bootMs = Date.now() - started;
      return lab;
    } catch (err) {
      const details = lab ? lab.diagnostics() : "";
      if (lab) await lab.close();
      else rmSync(dir, { recursive: true, force: true });
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`lab boot failed: ${msg}${details && !msg.includes(details) ? `\n${details}` : ""}`, { cause: err });
    }
  }

  async #start(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const qmpPath = join(this.dir, "qmp.sock");
    const ctlPath = join(this.dir, "ctl.sock");
    // QEMU creates its listening sockets before the guest runs; poll for them (listening, not only bound), but
    // notice an early exit.
    while (!(unixListening(qmpPath) && unixListening(ctlPath))) {
      if (this.#proc.exitCode !== null) throw new Error(`QEMU exited with status ${this.#proc.exitCode} before creating its sockets`);
      if (Date.now() > deadline) throw new Error(`QEMU did not create its sockets within ${timeoutMs} ms`);
      await Bun.sleep(20);
    }
    this.#qmp = await QmpClient.connect(qmpPath, { timeoutMs: Math.max(1000, deadline - Date.now()) });
    const ctl = await connectUnix(ctlPath, Math.max(1000, deadline - Date.now()));
    this.#agent = new AgentClient(ctl, () => this.diagnostics());
    const exited = this.#proc.exited.then((code) => {
      throw new Error(`QEMU exited with status ${code} during boot`);
    });
    exited.catch(() => {});
    await Promise.race([this.#agent.ready(Math.max(1000, deadline - Date.now())), exited]);
  }

  /** The connected QMP client of this VM. */
  get qmp(): QmpClient {
    if (!this.#qmp) throw new Error("the lab is not booted");
    return this.#qmp;
  }

  /** The second QMP socket (LabOptions.extraQmp), free for a client under test; null when not asked for. */
  get extraQmpPath(): string | null {
    const path = join(this.dir, "qmp-extra.sock");
    return existsSync(path) ? path : null;
  }

  /** QEMU's pid on the host. */
  get qemuPid(): number {
    return this.#proc.pid;
  }

  /** The guest kernel console (ttyS0) so far: kernel messages and the init script's lines. */
  consoleLog(): string {
    try {
      return readFileSync(join(this.dir, "console.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Runs `script` with sh in the guest (stdin /dev/null); rejects on timeout (default 60000 ms), killing the script. */
  async run(script: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return this.#agentOrThrow().run(script, opts);
  }

  /** Starts `script` in the background in the guest, in its own process group; resolves once it has a pid. */
  async spawn(script: string): Promise<GuestJob> {
    return this.#agentOrThrow().spawn(script);
  }

  /** The port's host-side socket path: QEMU listens there (server mode) or connects there (client mode). */
  socketPath(portName: string): string {
    return this.#port(portName).path;
  }

  /** A host client connection to a server-mode port. Close it with destroy(), never end() (facts (k)). */
  connect(portName: string, opts: { timeoutMs?: number } = {}): Promise<net.Socket> {
    const p = this.#port(portName);
    if (p.mode !== "server") throw new Error(`lab port "${portName}" is in client mode: QEMU connects to ${p.path}, listen there instead`);
    return connectUnix(p.path, opts.timeoutMs);
  }

  /** Connects to a server-mode port, sends `data`, and closes safely once it had time to reach the guest. */
  async send(portName: string, data: Uint8Array | string, opts: { lingerMs?: number } = {}): Promise<void> {
    await writeAndClose(await this.connect(portName), data, opts.lingerMs);
  }

  /** Quits QEMU (QMP quit, SIGKILL if it is still there after 10 s) and removes the temp dir. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#agent?.close();
    if (this.#qmp && this.#proc.exitCode === null) {
      // QEMU may close the connection before replying to quit: that is success too.
      await this.#qmp.execute("quit", undefined, { timeoutMs: 5000 }).catch(() => {});
    }
    this.#qmp?.close();
    if (!(await exitedWithin(this.#proc, 10_000))) {
      this.#proc.kill("SIGKILL");
      await exitedWithin(this.#proc, 5000);
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.#watchdog?.release();
    live.delete(this);
  }

  /** Synchronous last resort for process exit: SIGKILL QEMU and remove the temp dir. */
  killNow(): void {
    try {
      this.#proc.kill("SIGKILL");
    } catch {}
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  #agentOrThrow(): AgentClient {
    if (!this.#agent || this.#closed) throw new Error("the lab is closed");
    return this.#agent;
  }

  #port(portName: string): ResolvedPort {
    const p = this.ports.find((x) => x.name === portName);
    if (!p) throw new Error(`no lab port named "${portName}"; ports: ${this.ports.map((x) => x.name).join(", ")}`);
    return p;
  }

  /** The tail of the guest console and QEMU's own messages, for error reports. */
  diagnostics(): string {
    const tail = (text: string, n: number) => text.trimEnd().split("\n").slice(-n).join("\n");
    const read = (f: string) => {
      try {
        return readFileSync(join(this.dir, f), "utf8");
      } catch {
        return "";
      }
    };
    const parts: string[] = [];
    const qemu = (read("qemu.err") + read("qemu.log")).trim();
    if (qemu) parts.push(`QEMU said:\n${tail(qemu, 20)}`);
    const con = this.consoleLog().trim();
    parts.push(con ? `guest console (last lines):\n${tail(con, 40)}` : "guest console: (empty)");
    return parts.join("\n");
  }
}

async function exitedWithin(proc: ReturnType<typeof Bun.spawn>, ms: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = await Promise.race([proc.exited.then(() => true as const), timeout]);
  clearTimeout(timer);
  return done;
}
