import { type Stats, statSync } from "node:fs";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { SocketStream } from "../net/socket-stream.ts";
import { unixSocketHeld } from "./unix-held.ts";

export interface SocketChannelOptions {
  /** After the send queue is empty, stay connected this long so QEMU can hand its last bytes to the guest. Default 1000. */
  lingerMs?: number;
}

/**
 * A host-side connection to a VM's port socket. It never half-closes (QEMU takes SHUT_WR as a
 * disconnect) and closes only after SIOCOUTQ reaches 0 plus a linger, or QEMU drops the tail.
 */
export class SocketChannel extends SocketStream {
  /** Connects to `path`; errors say whether the VM is gone, the socket held, or access denied. */
  static async connect(path: string, label: string, options: SocketChannelOptions = {}): Promise<SocketChannel> {
    if (unixSocketHeld(path) === true)
      throw new VmchanError(`cannot connect to "${label}": another client already holds ${path}`, {
        code: ExitCode.busy,
        hint: "QEMU serves one client per port socket; stop the other client (libvirt holds org.qemu.guest_agent.0)",
      });
    const ch = new SocketChannel(label, { finish: "linger", lingerMs: options.lingerMs });
    try {
      ch.attach(await Bun.connect({ unix: path, data: ch, allowHalfOpen: true, socket: SocketStream.handlers }));
    } catch (err) {
      throw connectError(err, path, label);
    }
    return ch;
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
    default:
      return new VmchanError(`${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
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
