import { readFileBounded } from "../bounded-read.ts";
import { MAX_NET_UNIX, parseProcNetUnix } from "./proc-sockets.ts";

/**
 * Whether a client is already connected to the unix socket a server listens on at `path`, from
 * /proc/net/unix: a connected socket (state 3) that carries the path is the server's end of an
 * accepted connection. QEMU serves one client at a time; a second one would hang.
 * null when /proc/net/unix cannot be read or shows no listener at `path` (other namespace).
 */
export function unixSocketHeld(path: string, procNetUnix = "/proc/net/unix"): boolean | null {
  let text: string;
  try {
    text = readFileBounded(procNetUnix, MAX_NET_UNIX);
  } catch {
    return null;
  }
  const mine = parseProcNetUnix(text).filter((e) => e.path === path);
  if (!mine.some((e) => e.listening)) return null;
  return mine.some((e) => !e.listening && e.state === 3);
}
