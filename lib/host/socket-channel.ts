import type { Socket } from "bun";
import { CHUNK_SIZE, sleep } from "../endpoint.ts";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import type { Channel } from "../channel.ts";
import { socketOutq } from "../sys/libc.ts";
import { unixSocketHeld } from "./unix-held.ts";

export interface SocketChannelOptions {
  /** After the send queue is empty, stay connected this long so QEMU can hand its last bytes to the guest. Default 1000. */
  lingerMs?: number;
  /** Refuse (ExitCode.busy) a socket another client already holds. Default true. */
  refuseHeld?: boolean;
}

/** Read-side queue cap: pause the socket above it, so a fast guest cannot grow our memory. */
const QUEUE_CAP = 4 * CHUNK_SIZE;

/**
 * A host-side connection to a VM's port socket. Writers never half-close (QEMU takes SHUT_WR as a
 * disconnect) and close only after SIOCOUTQ reaches 0 plus a linger, or QEMU drops the tail.
 */
export class SocketChannel implements Channel {
  readonly label: string;
  private socket!: Socket<undefined>;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private paused = false;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private drained: (() => void) | null = null;
  private readonly lingerMs: number;
  bytesWritten = 0;

  private constructor(label: string, lingerMs: number) {
    this.label = label;
    this.lingerMs = lingerMs;
  }

  /** Connects to `path`; errors say whether the VM is gone, the socket held, or access denied. */
  static async connect(path: string, label: string, options: SocketChannelOptions = {}): Promise<SocketChannel> {
    if ((options.refuseHeld ?? true) && unixSocketHeld(path) === true)
      throw new VmchanError(`cannot connect to "${label}": another client already holds ${path}`, {
        code: ExitCode.busy,
        hint: "QEMU serves one client per port socket; stop the other client (libvirt holds org.qemu.guest_agent.0)",
      });
    const ch = new SocketChannel(label, options.lingerMs ?? 1000);
    try {
      ch.socket = await Bun.connect({
        unix: path,
        socket: {
          data: (_s, data) => ch.onData(data),
          drain: () => ch.onDrain(),
          end: () => ch.onEnd(null),
          close: () => ch.onEnd(null),
          error: (_s, err) => ch.onEnd(err),
        },
      });
    } catch (err) {
      throw connectError(err, path, label);
    }
    return ch;
  }

  async waitForPeer(): Promise<void> {}

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk) {
        this.queued -= chunk.byteLength;
        if (this.paused && this.queued < QUEUE_CAP / 2) {
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
    let off = 0;
    while (off < chunk.byteLength) {
      if (this.failure) throw this.failure;
      if (this.ended) throw this.peerGone();
      // Bun's write() may take fewer bytes than given: the rest waits for drain.
      const n = this.socket.write(off === 0 ? chunk : chunk.subarray(off));
      if (n > 0) {
        off += n;
        this.bytesWritten += n;
        continue;
      }
      if (n < 0) throw this.peerGone();
      await new Promise<void>((resolve) => (this.drained = resolve));
    }
  }

  /** Waits until QEMU has read everything we wrote, then lingers, so no tail is lost on close. */
  async finish(): Promise<void> {
    const fd = (this.socket as unknown as { fd?: number }).fd;
    while (!this.ended && typeof fd === "number" && socketOutq(fd) > 0) await sleep(5);
    if (!this.ended && this.lingerMs > 0) await sleep(this.lingerMs);
  }

  close(): void {
    if (!this.socket) return;
    // A full close: never shutdown(SHUT_WR), which QEMU takes as a disconnect.
    this.socket.terminate();
  }

  private onData(data: Uint8Array): void {
    this.queue.push(data);
    this.queued += data.byteLength;
    if (!this.paused && this.queued >= QUEUE_CAP) {
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

  private onEnd(err: Error | null): void {
    this.ended = true;
    if (err && !this.failure) this.failure = new VmchanError(`connection to "${this.label}" failed: ${err.message}`, { code: ExitCode.peerGone });
    this.wakeReader();
    this.onDrain();
  }

  private wakeReader(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private peerGone(): VmchanError {
    return new VmchanError(`cannot write to "${this.label}": the VM closed the connection after ${this.bytesWritten} bytes were written`, {
      code: ExitCode.peerGone,
      hint: "the VM may have stopped or the port been removed",
    });
  }
}

function connectError(err: unknown, path: string, label: string): VmchanError {
  const what = `cannot connect to "${label}"`;
  switch (errnoOf(err)) {
    case "ENOENT":
      return new VmchanError(`${what}: no socket at ${path}`, { code: ExitCode.notFound, hint: "is the VM running? see 'vmchan ports list'" });
    case "ECONNREFUSED":
      return new VmchanError(`${what}: nothing listens on ${path}`, {
        code: ExitCode.notFound,
        hint: "the VM has exited, or its chardev is in client mode (use 'vmchan listen unix:PATH')",
      });
    case "EACCES":
    case "EPERM":
      return new VmchanError(`${what}: permission denied on ${path}`, {
        code: ExitCode.permission,
        hint: "run as the user QEMU runs as, or as a member of the socket's group",
      });
    default:
      return new VmchanError(`${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
  }
}
