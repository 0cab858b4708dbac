import * as fs from "node:fs";
import { readFileBounded } from "../bounded-read.ts";
import { dumpUnixSockets, type DiagUnixSocket } from "../sys/sock-diag.ts";

/** /proc/net/unix is read up to this many bytes (about 350,000 sockets); a bigger one is taken as unreadable. */
export const PROC_NET_UNIX_MAX_BYTES = 32 * 1024 * 1024;

/** Reads a /proc text file in pieces (its size reads as 0), at most `limit` bytes; throws past that. */
export function readProcText(path: string, limit = PROC_NET_UNIX_MAX_BYTES): string {
  return readFileBounded(path, limit);
}

/** One unix socket, from sock_diag or from a line of /proc/net/unix (which gives no peer, vfs or uid). */
export type UnixSocketEntry = DiagUnixSocket;

/**
 * Parses /proc/net/unix: `Num RefCount Protocol Flags Type St Inode Path`. Unnamed sockets are kept
 * (path null) so that an inode a forged line repeats is seen twice. Lines that do not parse are skipped.
 */
export function parseProcNetUnix(text: string): UnixSocketEntry[] {
  const out: UnixSocketEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    // Split off the seven fixed fields only: the path itself may contain spaces.
    const m = /^\s*\S+:\s+\S+\s+\S+\s+([0-9A-Fa-f]+)\s+\S+\s+([0-9A-Fa-f]+)\s+(\d+)(?: (.*))?$/.exec(line);
    if (!m) continue;
    const listening = (parseInt(m[1]!, 16) & 0x10000) !== 0;
    const st = parseInt(m[2]!, 16);
    out.push({
      inode: Number(m[3]),
      state: listening ? "listen" : st === 3 ? "connected" : st === 2 ? "connecting" : "unconnected",
      // U+FFFD: bytes that were not UTF-8, so the string names some other file than the socket's.
      path: m[4] === undefined || m[4] === "" || m[4].includes("\uFFFD") ? null : m[4],
      peer: null,
      vfs: null,
      uid: null,
    });
  }
  return out;
}

/** The unix sockets of one network namespace, indexed by inode. */
export interface UnixSocketTable {
  /** "sock_diag", or the /proc file the table was parsed from. */
  source: string;
  sockets: UnixSocketEntry[];
  byInode: Map<number, UnixSocketEntry>;
  /**
   * Inodes on more than one line of a /proc/net/unix text. A socket path may contain a newline, so any
   * user can add lines that pair another socket's inode with a path of their own: such inodes are unknown.
   * Always empty for sock_diag, whose names are length-prefixed bytes.
   */
  forged: Set<number>;
}

/** A table from /proc/net/unix text, with every inode that appears twice taken out as forged. */
export function tableFromProcText(text: string, source: string): UnixSocketTable {
  const all = parseProcNetUnix(text);
  const seen = new Set<number>();
  const forged = new Set<number>();
  for (const e of all) (seen.has(e.inode) ? forged : seen).add(e.inode);
  const sockets = all.filter((e) => !forged.has(e.inode));
  return { source, sockets, byInode: new Map(sockets.map((e) => [e.inode, e])), forged };
}

/** A table from the kernel's sock_diag dump of this network namespace; throws when sock_diag is unavailable. */
export function tableFromSockDiag(dump: () => UnixSocketEntry[] = dumpUnixSockets): UnixSocketTable {
  const sockets = dump();
  return { source: "sock_diag", sockets, byInode: new Map(sockets.map((e) => [e.inode, e])), forged: new Set() };
}

/**
 * The unix sockets of this network namespace: sock_diag when it works, else /proc/net/unix (at
 * `procNetUnix`) with duplicated inodes refused. null when neither can be read.
 */
export function ownUnixSockets(procNetUnix = "/proc/net/unix"): UnixSocketTable | null {
  try {
    return tableFromSockDiag();
  } catch {
    try {
      return tableFromProcText(readProcText(procNetUnix), procNetUnix);
    } catch {
      return null;
    }
  }
}

/**
 * Whether a socket's sock_diag VFS record names the file `st` describes. sock_diag gives the low 32 bits
 * of the inode and the superblock's device; stat gives a per-subvolume anonymous device (major 0) on
 * btrfs and overlayfs, so there the inode alone has to do.
 */
export function sameSocketFile(vfs: { dev: number; ino: number } | null, st: { dev: number; ino: number }): boolean {
  if (vfs === null || vfs.ino !== st.ino % 2 ** 32) return false;
  return vfs.dev === st.dev || Math.floor(st.dev / 256) % 4096 === 0;
}

/** What QEMU's own file descriptors say about its unix sockets. */
export interface ProcSockets {
  /** Path of the unix socket behind each of QEMU's fds that has one (how `fd=N` chardevs get a path). */
  pathByFd: Map<number, string>;
  /** Paths on which QEMU holds an accepted, connected socket: a client is connected there. */
  connected: Set<string>;
  /**
   * The socket file each of QEMU's listening sockets is bound to, by path (sock_diag only: /proc/net/unix
   * does not tell). A file at that path with another device or inode is not QEMU's socket.
   */
  listeningFiles: Map<string, { dev: number; ino: number }>;
  /** QEMU fds whose socket inode a forged /proc/net/unix line repeats: their path and state are unknown. */
  forgedFds: number[];
  /** Where the socket table came from. */
  source: string;
}

/** Options of `readProcSockets`. */
export interface ReadProcSocketsOptions {
  /**
   * The socket table of this process's own network namespace (sock_diag), used when QEMU shares it.
   * Default: none, so /proc/PID/net/unix is parsed (with duplicated inodes refused).
   */
  ownTable?: () => UnixSocketTable | null;
}

/**
 * Reads /proc/PID/fd and the sockets of the process's network namespace: sock_diag when QEMU shares
 * ours and `ownTable` gives one, else /proc/PID/net/unix. Throws the underlying error (EACCES for
 * another user's QEMU when not root) so the caller can note it.
 */
export function readProcSockets(procDir: string, pid: number, options: ReadProcSocketsOptions = {}): ProcSockets {
  const fds = fs.readdirSync(`${procDir}/${pid}/fd`);
  let table: UnixSocketTable | null = null;
  if (options.ownTable && _sameNetns(procDir, pid)) table = options.ownTable();
  table ??= tableFromProcText(readProcText(`${procDir}/${pid}/net/unix`), `${procDir}/${pid}/net/unix`);
  const pathByFd = new Map<number, string>();
  const connected = new Set<string>();
  const listeningFiles = new Map<string, { dev: number; ino: number }>();
  const forgedFds: number[] = [];
  for (const fd of fds) {
    let target: string;
    try {
      target = fs.readlinkSync(`${procDir}/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode === undefined) continue;
    if (table.forged.has(Number(inode))) {
      forgedFds.push(Number(fd));
      continue;
    }
    const e = table.byInode.get(Number(inode));
    if (!e || e.path === null) continue;
    pathByFd.set(Number(fd), e.path);
    if (e.state === "connected") connected.add(e.path);
    if (e.state === "listen" && e.vfs !== null) listeningFiles.set(e.path, e.vfs);
  }
  return { pathByFd, connected, listeningFiles, forgedFds: forgedFds.sort((a, b) => a - b), source: table.source };
}

/** Whether process `pid` is in the network namespace of this process (sock_diag sees only our own). */
function _sameNetns(procDir: string, pid: number): boolean {
  try {
    return fs.readlinkSync(`${procDir}/${pid}/ns/net`) === fs.readlinkSync(`${procDir}/self/ns/net`);
  } catch {
    return false;
  }
}

/** A note for QEMU fds whose inode /proc/net/unix shows on several lines. */
export function forgedNote(label: string, sockets: ProcSockets): string | null {
  const n = sockets.forgedFds.length;
  if (n === 0) return null;
  const what = n === 1 ? `fd ${sockets.forgedFds[0]} is a socket whose inode appears` : `fds ${sockets.forgedFds.join(", ")} are sockets whose inodes appear`;
  return (
    `${label}: ${what} on several lines of ${sockets.source} ` +
    `(a socket path with a newline in it forges lines): ${n === 1 ? "its path and state are" : "their paths and state are"} unknown`
  );
}
