import * as fs from "node:fs";
import { readFileBounded } from "../bounded-read.ts";
import { dumpUnixSockets, queryUnixSocket, type DiagUnixSocket } from "../sys/sock-diag.ts";

/** /proc/net/unix is read up to this many bytes (about 350,000 sockets); a bigger one is taken as unreadable. */
export const PROC_NET_UNIX_MAX_BYTES = 32 * 1024 * 1024;

/** Reads a /proc text file in pieces (its size reads as 0), at most `limit` bytes; throws past that. */
export function readProcText(path: string, limit = PROC_NET_UNIX_MAX_BYTES): string {
  return readFileBounded(path, limit);
}

/** QEMU's socket fds are looked at up to this many; a process with more is taken as unreadable (a note), not walked for ever. */
export const MAX_SOCKET_FDS = 65_536;

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
      // U+FFFD: bytes that were not UTF-8, so the string names some other file than the socket's; a
      // relative name was bound against its creator's working directory, not ours. Both: no path.
      path: m[4] === undefined || m[4] === "" || m[4].includes("\uFFFD") || !/^[/@]/.test(m[4]) ? null : m[4],
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
 * The unix sockets of this network namespace: sock_diag when it works (only those `keep` accepts,
 * default all), else /proc/net/unix (at `procNetUnix`) with duplicated inodes refused. null when
 * neither can be read.
 */
export function ownUnixSockets(procNetUnix = "/proc/net/unix", keep?: (e: UnixSocketEntry) => boolean): UnixSocketTable | null {
  try {
    return tableFromSockDiag(() => dumpUnixSockets({ keep }));
  } catch {
    try {
      // The text is kept whole: an inode repeated anywhere in it marks a forgery.
      return tableFromProcText(readProcText(procNetUnix), procNetUnix);
    } catch {
      return null;
    }
  }
}

/** statfs f_type of btrfs and overlayfs: the filesystems whose stat() shows a per-subvolume or per-layer anonymous device. */
const BTRFS_MAGIC = 0x9123683e;
const OVERLAYFS_MAGIC = 0x794c7630;

/** A socket file as stat gives it, for comparing with sock_diag's VFS record (see sameSocketFile). */
export interface SocketFile {
  dev: number;
  /** The inode; a bigint keeps inodes above 2^53 (overlayfs xino) exact. */
  ino: bigint | number;
  /** Whether stat's device cannot be compared with the superblock's (btrfs, overlayfs): then the inode alone has to do. */
  inodeOnly: boolean;
}

/** The socket file at `path` (not followed if a link) for sameSocketFile; null when there is none. */
export function socketFileAt(path: string): SocketFile | null {
  let st: fs.BigIntStats;
  try {
    st = fs.lstatSync(path, { bigint: true });
  } catch {
    return null;
  }
  const dev = Number(st.dev);
  let inodeOnly = false;
  // Only an anonymous device (major 0) can differ from the superblock's, and tmpfs, whose device is
  // anonymous too, gives both the same one: so the filesystem type decides, not the major number.
  if (Math.floor(dev / 256) % 4096 === 0) {
    try {
      const type = Number(fs.statfsSync(path).type) >>> 0;
      inodeOnly = type === BTRFS_MAGIC || type === OVERLAYFS_MAGIC;
    } catch {
      // unknown filesystem: the exact comparison
    }
  }
  return { dev, ino: st.ino, inodeOnly };
}

/**
 * Whether a socket's sock_diag VFS record names the file `file` describes. sock_diag gives the low 32
 * bits of the inode and the superblock's device; stat gives the same device except on btrfs and
 * overlayfs (a per-subvolume or per-layer anonymous device), where the inode alone has to do.
 */
export function sameSocketFile(vfs: { dev: number; ino: number } | null, file: SocketFile): boolean {
  if (vfs === null || BigInt(vfs.ino) !== (BigInt(file.ino) & 0xffffffffn)) return false;
  return vfs.dev === file.dev || file.inodeOnly;
}

/** One of QEMU's listening sockets: its inode, and the socket file it is bound to (null for an abstract one). */
export interface ListenerOf {
  inode: number;
  vfs: { dev: number; ino: number } | null;
}

/** What QEMU's own file descriptors say about its unix sockets. */
export interface ProcSockets {
  /** Path of the unix socket behind each of QEMU's fds that has one (how `fd=N` chardevs get a path). */
  pathByFd: Map<number, string>;
  /** Paths on which QEMU holds an accepted, connected socket: a client is connected there. */
  connected: Set<string>;
  /** Paths QEMU's listening sockets are bound to. */
  listening: Set<string>;
  /** QEMU's listening sockets (sock_diag only): their inodes and the socket files they are bound to, for checking a connection. */
  listeners: ListenerOf[];
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

/** Looks up one socket of this network namespace by inode (sock_diag); throws when it cannot ask at all. */
export type SocketLookup = (inode: number) => UnixSocketEntry | null;

/** Options of `readProcSockets`. */
export interface ReadProcSocketsOptions {
  /**
   * Asks the kernel about one socket of this process's own network namespace, used for each of QEMU's
   * socket fds when QEMU shares it: memory stays bounded whatever the host's socket count. Default:
   * none, so /proc/PID/net/unix is parsed (with duplicated inodes refused).
   */
  lookup?: SocketLookup;
  /**
   * Tables parsed from /proc/PID/net/unix, by network namespace (the ns/net link): QEMUs that share
   * one are read once. Default: none kept.
   */
  textCache?: Map<string, UnixSocketTable>;
}

/** The sock_diag lookup of one inode, the default for discovery on the real /proc. */
export const diagLookup: SocketLookup = (inode) => queryUnixSocket(inode);

/**
 * Reads /proc/PID/fd and asks about each socket: sock_diag, one inode at a time, when QEMU shares our
 * network namespace and `lookup` works; else /proc/PID/net/unix. Throws the underlying error (EACCES
 * for another user's QEMU when not root) so the caller can note it.
 */
export function readProcSockets(procDir: string, pid: number, options: ReadProcSocketsOptions = {}): ProcSockets {
  const fds = fs.readdirSync(`${procDir}/${pid}/fd`);
  const inodes = new Map<number, number>(); // fd -> socket inode
  for (const fd of fds) {
    let target: string;
    try {
      target = fs.readlinkSync(`${procDir}/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined) inodes.set(Number(fd), Number(inode));
    if (inodes.size > MAX_SOCKET_FDS) throw new Error(`${procDir}/${pid}/fd has more than ${MAX_SOCKET_FDS} sockets`);
  }
  let entries: { source: string; get: (inode: number) => UnixSocketEntry | undefined; forged: Set<number> } | null = null;
  if (options.lookup && _sameNetns(procDir, pid)) {
    const found = new Map<number, UnixSocketEntry>();
    try {
      for (const inode of new Set(inodes.values())) {
        const e = options.lookup(inode);
        if (e !== null) found.set(inode, e);
      }
      entries = { source: "sock_diag", get: (i) => found.get(i), forged: new Set() };
    } catch {
      entries = null; // sock_diag unavailable: the text
    }
  }
  if (entries === null) {
    const table = _textTable(procDir, pid, options.textCache);
    entries = { source: table.source, get: (i) => table.byInode.get(i), forged: table.forged };
  }
  const pathByFd = new Map<number, string>();
  const connected = new Set<string>();
  const listening = new Set<string>();
  const listeningFiles = new Map<string, { dev: number; ino: number }>();
  const listeners: ListenerOf[] = [];
  const forgedFds: number[] = [];
  for (const [fd, inode] of inodes) {
    if (entries.forged.has(inode)) {
      forgedFds.push(fd);
      continue;
    }
    const e = entries.get(inode);
    if (!e || e.path === null) continue;
    pathByFd.set(fd, e.path);
    if (e.state === "connected") connected.add(e.path);
    if (e.state === "listen") listening.add(e.path);
    if (e.state === "listen" && e.vfs !== null) listeningFiles.set(e.path, e.vfs);
    if (e.state === "listen" && entries.source === "sock_diag") listeners.push({ inode, vfs: e.vfs });
  }
  return { pathByFd, connected, listening, listeners, listeningFiles, forgedFds: forgedFds.sort((a, b) => a - b), source: entries.source };
}

/** The table of /proc/PID/net/unix, from `cache` when another process of the same network namespace was read. */
function _textTable(procDir: string, pid: number, cache: Map<string, UnixSocketTable> | undefined): UnixSocketTable {
  let ns: string | null = null;
  try {
    ns = fs.readlinkSync(`${procDir}/${pid}/ns/net`);
  } catch {
    // unknown namespace: read it, keep nothing
  }
  const file = `${procDir}/${pid}/net/unix`;
  const hit = ns === null ? undefined : cache?.get(ns);
  if (hit) return { ...hit, source: file }; // the same namespace's sockets, named as this process's file
  const table = tableFromProcText(readProcText(file), file);
  if (ns !== null) cache?.set(ns, table);
  return table;
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
