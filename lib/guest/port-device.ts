import * as fs from "node:fs";
import { CHUNK_SIZE, type Endpoint, sleep } from "../endpoint.ts";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { enableSigio, pollNow, POLLHUP, POLLIN, POLLOUT } from "../sys/libc.ts";
import { installSigio, sigioGeneration, waitSigio } from "../sys/sigio.ts";
import { openPortFd } from "./port-open.ts";

/** The kernel's caps: one write() takes at most 32 KiB, one read() returns at most 4 KiB. */
const MAX_WRITE = 32 * 1024;
/** Re-check state this often even without SIGIO, in case a signal was missed (one poll; rare, so waiting costs no CPU). */
const SAFETY_POLL_MS = 5000;

export interface PortOptions {
  /** Wait for the host to connect (default true); false: fail at once with ExitCode.noPeer. */
  wait?: boolean;
  /** Keep reading across host disconnects and reconnects, like `tail -f` (default false). */
  follow?: boolean;
  /** Bound on the wait for the host, in ms (default: none). */
  timeoutMs?: number;
  /** The root /proc and /sys are read under (to check the device, to name a port's holder). Default "/". */
  root?: string;
  /** Open any existing file or device, without the virtio-serial check (`file:PATH`). Default false. */
  anyDevice?: boolean;
  /** Whether the command accepts `file:PATH` (for the refusal's hint). Default true. */
  fileAddress?: boolean;
}

/** What poll() says about a port right now (see the facts: IN|HUP = no host, 0 = ring full, HUP alone = unplugged). */
export type PortState = "disconnected" | "connected" | "full" | "gone";

export function portState(revents: number): PortState {
  if (revents & POLLOUT) return "connected";
  if (revents & POLLHUP) return revents & POLLIN ? "disconnected" : "gone";
  if (revents & POLLIN) return "connected";
  return "full";
}

/**
 * A guest virtio-serial port (or hvc console) opened non-blocking with SIGIO.
 * Reading 0 means "no host connected", not end of stream; the end of a host session is a 0 after
 * data or a connected state was seen. Nothing blocks the JS thread or a pool thread.
 */
export class PortDevice implements Endpoint {
  readonly path: string;
  readonly label: string;
  readonly isConsole: boolean;
  /** Bytes written to the port and read from it so far. */
  bytesWritten = 0;
  bytesRead = 0;
  private fd: number;
  private readonly buf = new Uint8Array(CHUNK_SIZE);
  private readonly opts: PortOptions;
  private readonly started = performance.now();
  /** True while a host session is known to be active (seen connected, or data came). */
  private session = false;
  /** True once any host session was seen: --no-wait and --timeout apply only before that. */
  private everConnected = false;
  private closed = false;
  /** Bumped by interrupt(): a read() or write() in progress when it changes stops. */
  private epoch = 0;
  private readonly interruptWakers = new Set<() => void>();

  private constructor(fd: number, path: string, label: string, isConsole: boolean, opts: PortOptions) {
    this.fd = fd;
    this.path = path;
    this.label = label;
    this.isConsole = isConsole;
    this.opts = opts;
  }

  /**
   * Opens `path` read-write, non-blocking, with SIGIO; errors name the port, the cause and a fix.
   * Only a virtio-serial port or hvc console is opened, unless `opts.anyDevice` (see openPortFd).
   */
  static open(path: string, label: string, opts: PortOptions = {}): PortDevice {
    installSigio();
    const fd = openPortFd(path, label, { root: opts.root, anyDevice: opts.anyDevice, fileAddress: opts.fileAddress });
    const isConsole = /\/hvc\d+$/.test(path);
    try {
      enableSigio(fd);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new PortDevice(fd, path, label, isConsole, opts);
  }

  /** The port's state now. A console tty is always "connected": its host side cannot be seen. */
  state(): PortState {
    if (this.isConsole) return "connected";
    return portState(pollNow(this.fd));
  }

  /** Waits until a host is connected (honours wait/timeoutMs). */
  async waitForHost(): Promise<void> {
    for (;;) {
      const gen = sigioGeneration();
      const st = this.state();
      if (st === "connected" || st === "full") {
        this.session = true;
        return;
      }
      if (st === "gone") throw this.unplugged();
      await this.idle(gen);
    }
  }

  async read(): Promise<Uint8Array | null> {
    const epoch = this.epoch;
    for (;;) {
      if (this.epoch !== epoch) return null;
      const gen = sigioGeneration();
      const { n, why } = this.fill();
      if (n > 0) {
        this.session = true;
        this.bytesRead += n;
        return this.buf.subarray(0, n);
      }
      if (why === "gone") throw this.unplugged();
      if (why === "again") {
        this.session = true; // connected, idle
        await this.sleep(gen, SAFETY_POLL_MS);
        continue;
      }
      // why === "zero": no host connected.
      if (this.session) {
        this.session = false;
        this.everConnected = true;
        if (!this.opts.follow) return null;
      }
      await this.idle(gen);
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    const epoch = this.epoch;
    let off = 0;
    let backoff = 1;
    while (off < chunk.byteLength) {
      if (this.epoch !== epoch) throw new VmchanError(`write to port "${this.label}" was interrupted`);
      const gen = sigioGeneration();
      let n: number;
      try {
        n = fs.writeSync(this.fd, chunk, off, Math.min(chunk.byteLength - off, MAX_WRITE));
      } catch (err) {
        const code = errnoOf(err);
        if (code === "ENODEV") throw this.unplugged();
        if (code !== "EAGAIN") throw this.ioError("write to", err);
        n = -1;
      }
      if (n > 0) {
        off += n;
        this.bytesWritten += n;
        this.session = true;
        backoff = 1;
        continue;
      }
      const st = this.state();
      if (st === "gone") throw this.unplugged();
      if (st === "disconnected") {
        if (this.session && this.bytesWritten > 0)
          throw new VmchanError(
            `cannot write to port "${this.label}": the host disconnected after ${this.bytesWritten} bytes were written`,
            { code: ExitCode.peerGone, hint: "keep the host side connected until the transfer ends" },
          );
        if (this.session) this.everConnected = true;
        this.session = false;
        await this.idle(gen);
        continue;
      }
      // Connected but QEMU's queue is full: the kernel sends no SIGIO when it drains, so back off on a timer.
      await this.sleep(-1, backoff);
      backoff = Math.min(backoff * 2, 50);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      fs.closeSync(this.fd);
    } catch {
      // already gone with the device
    }
  }

  /** Non-blocking reads into the buffer until it is full or the port has nothing more. */
  private fill(): { n: number; why: "data" | "again" | "zero" | "gone" } {
    let n = 0;
    while (n < this.buf.byteLength) {
      let got: number;
      try {
        got = fs.readSync(this.fd, this.buf, n, this.buf.byteLength - n, null);
      } catch (err) {
        const code = errnoOf(err);
        if (code === "EAGAIN") return { n, why: n > 0 ? "data" : "again" };
        if (code === "ENODEV") return { n, why: n > 0 ? "data" : "gone" };
        throw this.ioError("read from", err);
      }
      if (got === 0) return { n, why: n > 0 ? "data" : this.state() === "gone" ? "gone" : "zero" };
      n += got;
    }
    return { n, why: "data" };
  }

  /** No host: fail (no-wait, timeout) or sleep until SIGIO. */
  private async idle(gen: number): Promise<void> {
    if (this.session) this.everConnected = true;
    if (this.everConnected) return this.sleep(gen, SAFETY_POLL_MS);
    if (this.opts.wait === false)
      throw new VmchanError(`port "${this.label}" has no host connected`, {
        code: ExitCode.noPeer,
        hint: "connect to the port's socket on the host, or drop --no-wait to wait for it",
      });
    let wait = SAFETY_POLL_MS;
    if (this.opts.timeoutMs !== undefined) {
      const left = this.opts.timeoutMs - (performance.now() - this.started);
      if (left <= 0)
        throw new VmchanError(
          `gave up waiting for the host on port "${this.label}" after ${(this.opts.timeoutMs / 1000).toFixed(1)} s`,
          { code: ExitCode.timeout, hint: "is anything connected to the port's socket on the host? see 'vmchan ports list'" },
        );
      wait = Math.min(wait, left);
    }
    await this.sleep(gen, wait);
  }

  /**
   * Stops what is in progress: a pending read() returns null, a pending write() throws (the bridge
   * uses it to end a session whose other side has gone while the host stays connected).
   */
  interrupt(): void {
    this.epoch++;
    for (const wake of [...this.interruptWakers]) wake();
  }

  /** Waits for SIGIO after `gen` (gen -1: just the time), at most `ms`, or until interrupt(). */
  private async sleep(gen: number, ms: number): Promise<void> {
    let wake!: () => void;
    const interrupted = new Promise<void>((resolve) => this.interruptWakers.add((wake = resolve)));
    await Promise.race([gen < 0 ? sleep(ms) : waitSigio(gen, ms), interrupted]);
    this.interruptWakers.delete(wake);
  }

  private unplugged(): VmchanError {
    return new VmchanError(`port "${this.label}" was removed (hot-unplugged) while in use`, {
      code: ExitCode.unplugged,
      hint: `${this.bytesRead} bytes read and ${this.bytesWritten} written before it went`,
    });
  }

  private ioError(action: string, err: unknown): VmchanError {
    return new VmchanError(`cannot ${action} port "${this.label}": ${(err as Error).message}`, { cause: err });
  }
}
