import { type Stats, statSync } from "node:fs";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { SocketStream } from "../net/socket-stream.ts";
import * as fs from "node:fs";
import { unixSocketHeld } from "./unix-held.ts";
import { peerCredentials, type PeerCredentials } from "../sys/peercred.ts";
import { queryUnixSocket } from "../sys/sock-diag.ts";
import type { ListenerOf } from "./proc-sockets.ts";

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
   * The VM's QEMU pid. When set (a number, or null for a VM whose process is unknown), a peer of the
   * right user is not enough, since every VM of one service user shares it: the listening socket must
   * also have been made by that pid, or by root (libvirt makes the sockets it passes to QEMU), or the
   * connection's server end must be bound to one of `peerListeners`. Default: the uid check alone.
   */
  peerPid?: number | null;
  /** QEMU's own listening sockets (inodes and socket files, from sock_diag), see peerPid. */
  peerListeners?: readonly ListenerOf[];
  /**
   * Whether a client holds the socket, as the server's own fds show it (discovery's `held` for a VM's
   * port); null: unknown, so connect anyway; undefined: not known to the caller, so the sockets of this
   * namespace are asked by path (unixSocketHeld).
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
    if ((options.held === undefined ? unixSocketHeld(path) : options.held) === true)
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
      const why = _peerRefusal(peer, fd, options);
      if (why !== null) {
        socket.terminate(); // before a byte is written
        const who = peer === null ? "an unknown process" : `pid ${peer.pid} (uid ${peer.uid})`;
        throw new VmchanError(`refusing "${label}": the socket at ${path} was made by ${who}, ${why}`, {
          code: ExitCode.untrusted,
          hint: `${options.peerWho ? `${options.peerWho}; ` : ""}if you trust that socket anyway, connect to it as 'unix:${path}'`,
        });
      }
    }
    return ch.attach(socket);
  }
}

/** Why the listener behind a connection is not the VM's (the end of a sentence), or null when it is. */
function _peerRefusal(peer: PeerCredentials | null, fd: number | undefined, options: SocketChannelOptions): string | null {
  if (peer === null || !options.peerUids!.includes(peer.uid)) return "not by the VM's user or root";
  if (options.peerPid === undefined || peer.uid === 0 || (options.peerPid !== null && peer.pid === options.peerPid)) return null;
  if (options.peerListeners?.length && typeof fd === "number" && _reachedListener(fd, options.peerListeners)) return null;
  return options.peerPid === null
    ? "not by root, and not bound to a socket file the VM's QEMU listens on"
    : `not by the VM's QEMU (pid ${options.peerPid}) or root, and not bound to a socket file it listens on`;
}

/**
 * Whether our connection `fd` reached one of `listeners` (sock_diag): while it waits in a backlog, the
 * listener lists our socket's inode among its pending connections; once accepted, our peer is bound
 * to the listener's socket file. Asked a few times, since QEMU may accept between two questions.
 */
function _reachedListener(fd: number, listeners: readonly ListenerOf[]): boolean {
  try {
    const ino = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    if (ino === undefined) return false;
    const me = Number(ino);
    for (let round = 0; round < 3; round++) {
      const peer = queryUnixSocket(me)?.peer ?? null;
      if (peer !== null) {
        // Accepted: the server end shares its listener's socket file.
        const vfs = queryUnixSocket(peer)?.vfs ?? null;
        return vfs !== null && listeners.some((l) => l.vfs !== null && l.vfs.dev === vfs.dev && l.vfs.ino === vfs.ino);
      }
      if (listeners.some((l) => queryUnixSocket(l.inode)?.icons?.includes(me))) return true;
    }
    return false;
  } catch {
    return false; // sock_diag unavailable: no proof
  }
}

/** The error for a failed connect to a unix or TCP address. */
export function connectError(err: unknown, where: string, label: string): VmchanError {
  const what = `cannot connect to "${label}"`;
  const kind = notASocket(where);
  if (kind) return new VmchanError(`${what}: ${where} ${kind}`, { code: ExitCode.notFound, hint: "give the path of a unix socket" });
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
    case "ECONNRESET":
    case "EPIPE":
      // The kernel connected and the server accepted, then it went away before this side saw the connection open.
      return new VmchanError(`connection "${label}" failed: the peer closed it as soon as it was made (${errnoOf(err)})`, {
        code: ExitCode.peerGone,
        hint: "the server at the other end accepted and went away; see whether it is still running",
      });
    default: {
      const code = errnoOf(err);
      const message = (err as Error).message ?? String(err);
      return new VmchanError(`${what}: ${message}${code && !message.includes(code) ? ` (${code})` : ""}`, { cause: err });
    }
  }
}

/** Why a path is no socket ("is a directory, not a socket"), or null for a socket, a missing path or a TCP address. */
function notASocket(where: string): string | null {
  if (!where.startsWith("/") && !where.startsWith(".")) return null;
  let st: Stats;
  try {
    st = statSync(where);
  } catch (err) {
    return errnoOf(err) === "ENOTDIR" ? "does not exist: a part of it is not a directory" : null;
  }
  if (st.isSocket()) return null;
  const kind = st.isDirectory() ? "a directory" : st.isFile() ? "a regular file" : st.isFIFO() ? "a fifo" : "a device or other file";
  return `is ${kind}, not a socket`;
}
