import * as fs from "node:fs";
import { readFileBounded } from "../bounded-read.ts";

/**
 * Most of /proc/net/unix read: about 100 bytes a socket, so room for a million sockets; the kernel's file is
 * never endless, a fixture's or an image's could be.
 */
export const MAX_NET_UNIX = 128 * 1024 * 1024;

/** One line of /proc/net/unix. */
export interface UnixSocketEntry {
  inode: number;
  /** 1 unconnected (listening sockets too), 2 connecting (queued in a listener's backlog), 3 connected. */
  state: number;
  listening: boolean;
  /** Bound path, "@name" for abstract sockets; accepted connections carry their listener's path. */
  path: string;
}

/** Parses /proc/net/unix: `Num RefCount Protocol Flags Type St Inode Path`; unnamed sockets are left out. */
export function parseProcNetUnix(text: string): UnixSocketEntry[] {
  const out: UnixSocketEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    // Split off the seven fixed fields only: the path itself may contain spaces.
    const m = /^\s*\S+:\s+\S+\s+\S+\s+([0-9A-Fa-f]+)\s+\S+\s+([0-9A-Fa-f]+)\s+(\d+)(?: (.*))?$/.exec(line);
    if (!m || m[4] === undefined || m[4] === "") continue;
    const flags = parseInt(m[1]!, 16);
    out.push({ inode: Number(m[3]), state: parseInt(m[2]!, 16), listening: (flags & 0x10000) !== 0, path: m[4] });
  }
  return out;
}

/** What QEMU's own file descriptors say about its unix sockets. */
export interface ProcSockets {
  /** Path of the unix socket behind each of QEMU's fds that has one (how `fd=N` chardevs get a path). */
  pathByFd: Map<number, string>;
  /** Paths on which QEMU holds an accepted, connected socket: a client is connected there. */
  connected: Set<string>;
}

/**
 * Reads /proc/PID/fd and /proc/PID/net/unix (the process's own network namespace). Throws the
 * underlying error (EACCES for another user's QEMU when not root) so the caller can note it.
 */
export function readProcSockets(procDir: string, pid: number): ProcSockets {
  const entries = parseProcNetUnix(readFileBounded(`${procDir}/${pid}/net/unix`, MAX_NET_UNIX));
  const byInode = new Map(entries.map((e) => [e.inode, e]));
  const pathByFd = new Map<number, string>();
  const connected = new Set<string>();
  for (const fd of fs.readdirSync(`${procDir}/${pid}/fd`)) {
    let target: string;
    try {
      target = fs.readlinkSync(`${procDir}/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    const e = inode === undefined ? undefined : byInode.get(Number(inode));
    if (!e) continue;
    pathByFd.set(Number(fd), e.path);
    if (e.state === 3 && !e.listening) connected.add(e.path);
  }
  return { pathByFd, connected };
}
