import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { SocketStream } from "../net/socket-stream.ts";
import { unixSocketHeld } from "./unix-held.ts";
import { peerCredentials } from "../sys/peercred.ts";

export interface SocketChannelOptions {
  /** After the send queue is empty, stay connected this long so QEMU can hand its last bytes to the guest. Default 1000. */
  lingerMs?: number;
  /**
   * Users one of whom must have made the listening socket (SO_PEERCRED, checked on the connection
   * itself, so a socket file swapped after discovery is caught); the connection is closed unused
   * otherwise. Default: no check.
   */
  peerUids?: readonly number[];
  /** How messages name the expected owner, e.g. `VM "web01" (pid 42) runs as user "qemu" (uid 107)`. */
  peerWho?: string;
  /**
   * Whether a client holds the socket, as the server's own fds show it (discovery's `held` for a VM's
   * port); null or undefined: the sockets of this namespace are asked by path (unixSocketHeld).
   */
  held?: boolean | null;
}

/**
 * A host-side connection to a VM's port socket. It never half-closes (QEMU takes SHUT_WR as a
 * disconnect) and closes only after SIOCOUTQ reaches 0 plus a linger, or QEMU drops the tail.
 */
export class SocketChannel extends SocketStream {
  /** Connects to `path`; errors say whether the VM is gone, the socket held, or access denied. */
  static async connect(path: string, label: string, options: SocketChannelOptions = {}): Promise<SocketChannel> {
    if ((options.held ?? unixSocketHeld(path)) === true)
      throw new VmchanError(`cannot connect to "${label}": another client already holds ${path}`, {
        code: ExitCode.busy,
        hint: "QEMU serves one client per port socket; stop the other client (libvirt holds org.qemu.guest_agent.0)",
      });
    const ch = new SocketChannel(label, { finish: "linger", lingerMs: options.lingerMs });
    let socket: Awaited<ReturnType<typeof Bun.connect<SocketStream>>>;
    try {
      socket = await Bun.connect({ unix: path, data: ch, allowHalfOpen: true, socket: SocketStream.handlers });
    } catch (err) {
      throw connectError(err, path, label);
    }
    if (options.peerUids) {
      const fd = (socket as unknown as { fd?: number }).fd;
      const peer = typeof fd === "number" && fd >= 0 ? peerCredentials(fd) : null;
      if (peer === null || !options.peerUids.includes(peer.uid)) {
        socket.terminate(); // before a byte is written
        const who = peer === null ? "an unknown process" : `pid ${peer.pid} (uid ${peer.uid})`;
        throw new VmchanError(`refusing "${label}": the socket at ${path} was made by ${who}, not by the VM's user or root`, {
          code: ExitCode.untrusted,
          hint: `${options.peerWho ? `${options.peerWho}; ` : ""}if you trust that socket anyway, connect to it as 'unix:${path}'`,
        });
      }
    }
    return ch.attach(socket);
  }
}

/** The error for a failed connect to a unix or TCP address. */
export function connectError(err: unknown, where: string, label: string): VmchanError {
  const what = `cannot connect to "${label}"`;
  switch (errnoOf(err)) {
    case "ENOENT":
      return new VmchanError(`${what}: no socket at ${where}`, { code: ExitCode.notFound, hint: "is the VM running? see 'vmchan ports list'" });
    case "ECONNREFUSED":
      return new VmchanError(`${what}: nothing listens on ${where}`, {
        code: ExitCode.notFound,
        hint: where.startsWith("/") ? "the VM has exited, or its chardev is in client mode (use 'vmchan listen unix:PATH')" : "start the server first",
      });
    case "EACCES":
    case "EPERM":
      return new VmchanError(`${what}: permission denied on ${where}`, {
        code: ExitCode.permission,
        hint: "run as the user QEMU runs as, or as a member of the socket's group",
      });
    default:
      return new VmchanError(`${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
  }
}
