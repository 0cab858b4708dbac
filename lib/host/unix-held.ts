import { ownUnixSockets, sameSocketFile, socketFileAt, type UnixSocketTable } from "./proc-sockets.ts";

/**
 * Whether a client is already connected to the unix socket a server listens on at `path`: a connected
 * socket that carries the path is the server's end of an accepted connection. QEMU serves one client
 * at a time; a second one would hang. From sock_diag, only sockets bound to the very file at `path`
 * count (same device and inode), so a socket of the same name in another mount namespace does not.
 * From the /proc/net/unix fallback, sockets whose inode a forged line repeats are left out; a forged
 * line with an inode of its own still counts there, which is why VM:NAME asks QEMU's own fds instead
 * (see SocketChannelOptions.held).
 * null when no table can be read or it shows no listener at `path` (other namespace). By default
 * only the sockets named `path` are kept from sock_diag's dump, so no socket count forces the fallback.
 */
export function unixSocketHeld(path: string, table: UnixSocketTable | null = ownUnixSockets(undefined, (e) => e.path === path)): boolean | null {
  if (table === null) return null;
  let mine = table.sockets.filter((e) => e.path === path);
  if (table.source === "sock_diag") {
    const file = socketFileAt(path);
    if (file === null) return null;
    mine = mine.filter((e) => sameSocketFile(e.vfs, file));
  }
  if (!mine.some((e) => e.state === "listen")) return null;
  return mine.some((e) => e.state === "connected");
}
