import type { Socket, SocketHandler } from "bun";
import { CHUNK_SIZE, type Endpoint, sleep } from "../endpoint.ts";
import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { EAGAIN, EINTR, enableSigio, readFd, setAsync, setSendBuffer, socketOutq, writeFd } from "../sys/libc.ts";
import { installSigio, sigioGeneration, waitSigio } from "../sys/sigio.ts";

export interface SocketStreamOptions {
  /**
   * "half-close": finish() shuts down our write side (TCP peers expect it). "linger": never
   * half-close (QEMU takes SHUT_WR as a disconnect), and close() first waits until the peer has
   * read everything (SIOCOUTQ = 0) and `lingerMs` have passed since the last write, because QEMU
   * drops what it has read but not yet handed to the guest when the client closes.
   */
  finish: "half-close" | "linger";
  /** With "linger": how long after the last write (and an empty send queue) close() may close. Default 1000 ms. */
  lingerMs?: number;
}

/** Read-side queue cap: above it the socket is paused, so a fast peer cannot grow our memory. */
const QUEUE_CAP = 4 * CHUNK_SIZE;
/** Re-try a socket this often even without SIGIO, in case a signal was missed. */
const SAFETY_POLL_MS = 5000;

/**
 * A connected Bun socket as an Endpoint. Once attached, Bun stops reading it and the stream does
 * read(2) and write(2) on its fd itself, into one reusable buffer, waiting for SIGIO after EAGAIN
 * (as a guest port does): Bun's data callback allocates a fresh buffer per read, which the garbage
 * collector frees so late that a long transfer grew the process by tens of MiB. Writes hand every
 * byte to the kernel before they resolve. What Bun read before attach is served first.
 */
export class SocketStream implements Endpoint {
  readonly label: string;
  bytesWritten = 0;
  bytesRead = 0;
  socket!: Socket<SocketStream>;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private paused = false;
  /** The peer will send no more (EOF; it may still read: a half-close). */
  private ended = false;
  /** The connection is gone (peer closed fully, or error). */
  private gone = false;
  private closed = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private drained: (() => void) | null = null;
  private readonly options: SocketStreamOptions;
  private lastWrite = 0;
  private stopReading = false;
  /** The socket's fd when we do the I/O ourselves; -1 when Bun gives none (then Bun's callbacks are used). */
  private fd = -1;
  /** Allocated at attach: a client still waiting to be served costs no buffer. */
  private buf = new Uint8Array(0);
  private readonly wakers = new Set<() => void>();
  private waiting = 0;
  /** Read-side cap: QUEUE_CAP once attached; before that, what waitUnattached() set. */
  private cap = QUEUE_CAP;
  private attached = false;
  /** Before attach: called when the peer ends or goes, so a listener can drop a client that left. */
  private onLeave: (() => void) | null = null;

  constructor(label: string, options: SocketStreamOptions) {
    this.label = label;
    this.options = options;
  }

  /** Handlers that route each socket's events to the SocketStream in its `data` slot. */
  static readonly handlers: SocketHandler<SocketStream> = {
    data: (s, chunk) => s.data.onData(chunk),
    drain: (s) => s.data.onDrain(),
    end: (s) => s.data.onEnd(),
    close: (s) => s.data.onGone(null),
    error: (s, err) => s.data.onGone(err),
  };

  /**
   * For a client waiting to be served: Bun keeps reading it, into the queue, up to `capBytes` (then
   * it is paused), so that its EOF or reset is seen while it waits and `onLeave` can drop it.
   */
  waitUnattached(socket: Socket<SocketStream>, capBytes: number, onLeave: () => void): void {
    this.socket = socket;
    this.cap = capBytes;
    this.onLeave = onLeave;
    if (this.queued >= this.cap && !this.paused) {
      this.paused = true;
      socket.pause();
    }
  }

  attach(socket: Socket<SocketStream>): this {
    this.socket = socket;
    this.attached = true;
    this.onLeave = null;
    this.cap = QUEUE_CAP;
    const fd = (socket as unknown as { fd?: number }).fd;
    if (typeof fd === "number" && fd >= 0) {
      installSigio();
      socket.pause(); // from here on we read the fd, Bun does not
      setSendBuffer(fd, CHUNK_SIZE);
      // SIGIO only while someone waits (see idle): a busy socket would otherwise signal every packet.
      enableSigio(fd, { async: false });
      this.fd = fd;
      this.buf = new Uint8Array(CHUNK_SIZE);
    }
    return this;
  }

  /**
   * Waits until `attempt` (a read or write that hit EAGAIN) can go on: O_ASYNC is on only while
   * someone waits, and the attempt is retried once after turning it on, so nothing that arrived in
   * between is missed. Returns the retried attempt's result if it succeeded, else null after SIGIO.
   */
  private async idle(attempt: () => number): Promise<number | null> {
    if (this.waiting++ === 0) setAsync(this.fd, true);
    try {
      const gen = sigioGeneration();
      const n = attempt();
      if (n !== -EAGAIN) return n;
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => this.wakers.add((wake = resolve)));
      await Promise.race([waitSigio(gen, SAFETY_POLL_MS), woken]);
      this.wakers.delete(wake);
      return null;
    } finally {
      if (--this.waiting === 0 && !this.closed) setAsync(this.fd, false);
    }
  }

  private wakeAll(): void {
    for (const w of [...this.wakers]) w();
  }

  private async readOwn(): Promise<Uint8Array | null> {
    const attempt = () => readFd(this.fd, this.buf, 0, this.buf.byteLength);
    for (;;) {
      if (this.stopReading || this.closed || this.gone) return null;
      let n = attempt();
      if (n === -EAGAIN) n = (await this.idle(attempt)) ?? -EAGAIN;
      if (n > 0) {
        this.bytesRead += n;
        return this.buf.subarray(0, n);
      }
      if (n === 0) {
        this.ended = true;
        return null;
      }
      if (n === -EINTR || n === -EAGAIN) continue;
      this.gone = true;
      throw new VmchanError(`connection "${this.label}" failed: errno ${-n}`, { code: ExitCode.peerGone });
    }
  }

  private async writeOwn(chunk: Uint8Array): Promise<void> {
    let off = 0;
    const attempt = () => writeFd(this.fd, chunk, off, chunk.byteLength - off);
    while (off < chunk.byteLength) {
      if (this.gone || this.closed) throw this.peerGone();
      let n = attempt();
      if (n === -EAGAIN) n = (await this.idle(attempt)) ?? -EAGAIN;
      if (n > 0) {
        off += n;
        this.bytesWritten += n;
        this.lastWrite = performance.now();
      } else if (n !== -EAGAIN && n !== -EINTR) {
        this.gone = true;
        throw this.peerGone();
      }
    }
  }

  async read(): Promise<Uint8Array | null> {
    if (this.fd >= 0 && this.queue.length === 0 && !this.ended) return this.readOwn();
    for (;;) {
      if (this.stopReading) return null;
      const chunk = this.queue.shift();
      if (chunk) {
        this.queued -= chunk.byteLength;
        this.bytesRead += chunk.byteLength;
        if (this.paused && this.fd < 0 && this.queued < QUEUE_CAP / 2) {
          this.paused = false;
          this.socket.resume();
        }
        return chunk;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.fd >= 0) return this.writeOwn(chunk);
    let off = 0;
    while (off < chunk.byteLength) {
      if (this.failure) throw this.failure;
      if (this.gone || this.closed) throw this.peerGone();
      const n = this.socket.write(off === 0 ? chunk : chunk.subarray(off));
      if (n > 0) {
        off += n;
        this.bytesWritten += n;
        this.lastWrite = performance.now();
        continue;
      }
      if (n < 0) throw this.peerGone();
      await new Promise<void>((resolve) => (this.drained = resolve));
    }
  }

  async finish(): Promise<void> {
    if (this.options.finish === "half-close" && !this.closed && !this.gone) this.socket.shutdown();
  }

  /**
   * With "linger": waits until the peer has taken every byte, then the linger (at most `maxMs` in all); returns
   * how many bytes the peer had still not taken (0 when all were).
   */
  async drain(maxMs = 30_000): Promise<number> {
    // Nothing to protect if we wrote nothing, or if the peer has closed (QEMU never half-closes).
    if (this.options.finish !== "linger" || this.lastWrite === 0 || this.ended) return 0;
    const deadline = performance.now() + maxMs;
    const fd = (this.socket as unknown as { fd?: number }).fd;
    const unread = () => (typeof fd === "number" ? Math.max(0, socketOutq(fd)) : 0);
    let waited = false;
    while (!this.gone && unread() > 0 && performance.now() < deadline) {
      waited = true;
      await sleep(5);
    }
    const left = unread();
    if (this.gone || left > 0) return this.gone ? 0 : left;
    // QEMU has read the bytes, but holds the last tens of KiB until the guest's ring takes them (facts (l)): the
    // linger runs from the later of the last write and the moment QEMU was seen taking the rest (a guest that
    // opened the port only now has had no time for them).
    const since = waited ? performance.now() : this.lastWrite;
    const rest = since + (this.options.lingerMs ?? 1000) - performance.now();
    if (rest > 0) await sleep(Math.min(rest, Math.max(0, deadline - performance.now())));
    return 0;
  }

  /**
   * A client that left (EOF or gone) before sending anything or being served: a listener drops it. One
   * that sent bytes and then left is still served, as nc would (its bytes are delivered).
   */
  get abandoned(): boolean {
    return !this.attached && (this.gone || this.ended) && this.queued === 0 && this.bytesRead === 0;
  }

  /** Makes a pending (and any later) read() return null; the connection stays open for close(). */
  interruptRead(): void {
    this.stopReading = true;
    this.wakeReader();
    this.wakeAll();
  }

  /**
   * Closes fully (never a half-close first), after drain() for a "linger" stream. Bytes the peer never took are
   * lost with the close: that is an error (code `timeout`), never a quiet success.
   */
  async close(): Promise<void> {
    if (this.closed || !this.socket) return;
    const lost = await this.drain();
    if (this.closed) return;
    this.closed = true;
    this.wakeAll();
    this.socket.terminate();
    if (lost > 0)
      throw new VmchanError(`cannot finish writing to "${this.label}": the peer did not take the last ${lost} bytes within 30 s; they are lost`, {
        code: ExitCode.timeout,
        hint: "QEMU reads a port's socket only while a guest process has the port open: start the guest reader first",
      });
  }

  private onData(data: Uint8Array): void {
    this.queue.push(data);
    this.queued += data.byteLength;
    if (!this.paused && this.queued >= this.cap) {
      this.paused = true;
      this.socket.pause();
    }
    this.wakeReader();
  }

  private onDrain(): void {
    const d = this.drained;
    this.drained = null;
    d?.();
  }

  private onEnd(): void {
    this.ended = true;
    this.wakeReader();
    if (!this.attached) this.onLeave?.();
  }

  private onGone(err: Error | null): void {
    this.ended = true;
    this.gone = true;
    this.wakeAll();
    if (err && !this.failure)
      this.failure = new VmchanError(`connection "${this.label}" failed: ${err.message}`, { code: ExitCode.peerGone });
    this.wakeReader();
    this.onDrain();
    if (!this.attached) this.onLeave?.();
  }

  private wakeReader(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private peerGone(): VmchanError {
    return new VmchanError(`cannot write to "${this.label}": the peer closed the connection after ${this.bytesWritten} bytes were written`, {
      code: ExitCode.peerGone,
      hint: "the other side stopped (a VM stopped, a port was removed, or a client exited)",
    });
  }
}
