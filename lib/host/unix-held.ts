import * as fs from "node:fs";
import { ownUnixSockets, sameSocketFile, type UnixSocketTable } from "./proc-sockets.ts";

/**
 * Whether a client is already connected to the unix socket a server listens on at `path`: a connected
 * socket that carries the path is the server's end of an accepted connection. QEMU serves one client
 * at a time; a second one would hang. From sock_diag, only sockets bound to the very file at `path`
 * count (same device and inode), so a socket of the same name in another mount namespace does not.
 * From the /proc/net/unix fallback, sockets whose inode a forged line repeats are left out.
 * null when no table can be read or it shows no listener at `path` (other namespace).
 */
export function unixSocketHeld(path: string, table: UnixSocketTable | null = ownUnixSockets()): boolean | null {
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
