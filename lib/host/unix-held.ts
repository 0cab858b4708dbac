import * as fs from "node:fs";
import { ownUnixSockets, readProcText, sameSocketFile, tableFromProcText, type UnixSocketTable } from "./proc-sockets.ts";

/**
 * Whether a client is already connected to the unix socket a server listens on at `path`: a connected
 * socket that carries the path is the server's end of an accepted connection. QEMU serves one client
 * at a time; a second one would hang. From sock_diag, only sockets bound to the very file at `path`
 * count (same device and inode), so a socket of the same name in another mount namespace does not.
 * From the /proc/net/unix fallback (or a file of that format given as `source`), sockets whose inode a
 * forged line repeats are left out; a forged line with an inode of its own still counts there, which
 * is why VM:NAME asks QEMU's own fds instead (see SocketChannelOptions.held).
 * null when no table can be read or it shows no listener at `path` (other namespace).
 */
export function unixSocketHeld(path: string, source: UnixSocketTable | string | null = ownUnixSockets()): boolean | null {
  let table: UnixSocketTable | null;
  if (typeof source === "string") {
    // A /proc/net/unix-format file (another namespace's, a fixture): text, duplicated inodes refused.
    try {
      table = tableFromProcText(readProcText(source), source);
    } catch {
      return null;
    }
  } else table = source;
  if (table === null) return null;
  let mine = table.sockets.filter((e) => e.path === path);
  if (table.source === "sock_diag") {
    let st: fs.Stats;
    try {
      st = fs.statSync(path);
    } catch {
      return null;
    }
    mine = mine.filter((e) => sameSocketFile(e.vfs, st));
  }
  if (!mine.some((e) => e.state === "listen")) return null;
  return mine.some((e) => e.state === "connected");
}
