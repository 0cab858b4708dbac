/**
 * The unix sockets of this network namespace from the kernel's sock_diag netlink interface (what
 * `ss -x` uses). Unlike /proc/net/unix, names arrive as length-prefixed bytes: a socket path with a
 * newline in it cannot forge another socket's line.
 */
import { openLibc } from "./libc.ts";

/** One unix socket as sock_diag reports it. */
export interface DiagUnixSocket {
  inode: number;
  /** "listen", "connected" (either end of a connection, accepted ones included), "connecting", "unconnected". */
  state: "listen" | "connected" | "connecting" | "unconnected";
  /** Bound name: a path, "@name" for abstract sockets; accepted sockets carry their listener's name. null when unnamed. */
  path: string | null;
  /** Inode of the connected peer, null when none. */
  peer: number | null;
  /** Device (as stat(2) gives st_dev) and inode of the socket file a path socket is bound to (accepted sockets share the listener's). */
  vfs: { dev: number; ino: number } | null;
  /** Owner of the socket (the creator's fs uid), null on kernels before 5.3. */
  uid: number | null;
  /**
   * A listening socket's pending connections, by the inode of each connecting (client) socket. Only
   * asked for by queryUnixSocket; absent otherwise.
   */
  icons?: number[];
}

const AF_NETLINK = 16;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const UDIAG_SHOW_NAME = 0x1;
const UDIAG_SHOW_VFS = 0x2;
const UDIAG_SHOW_PEER = 0x4;
const UDIAG_SHOW_ICONS = 0x8;
const UDIAG_SHOW_UID = 0x40;
const UNIX_DIAG_NAME = 0;
const UNIX_DIAG_VFS = 1;
const UNIX_DIAG_PEER = 2;
const UNIX_DIAG_ICONS = 3;
const UNIX_DIAG_UID = 7;
/** The attribute type without NLA_F_NESTED and NLA_F_NET_BYTEORDER. */
const NLA_TYPE_MASK = 0x3fff;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const TCP_ESTABLISHED = 1;
const TCP_SYN_SENT = 2;
const TCP_LISTEN = 10;

/** Limits on what one dump may hold: a host with more unix sockets than this gets an error, not unbounded memory. */
export const SOCK_DIAG_MAX_SOCKETS = 262_144;
/** One recv() takes at most this much: the kernel fills a dump's pieces to about a page, so this never truncates. */
export const SOCK_DIAG_RECV_BUFFER = 64 * 1024;
/** A dump that has not ended after this many receives is taken as broken (1,000,000 x 64 KiB could never be real). */
export const SOCK_DIAG_MAX_RECEIVES = 1_000_000;

interface DiagLibc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Uint8Array, addr: Uint8Array): number;
  recv(fd: number, buf: Uint8Array): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number;
  close(fd: number): number;
  errno(): number;
}

let loaded: DiagLibc | undefined;

function diagLibc(): DiagLibc {
  if (loaded) return loaded;
  const { FFIType } = require("bun:ffi") as typeof import("bun:ffi");
  const { ffi, lib } = openLibc(
    {
      socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64_fast },
      recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64_fast },
      setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      close: { args: [FFIType.i32], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    },
    "sock_diag",
  );
  const s = lib.symbols;
  loaded = {
    socket: (d, t, p) => s.socket(d, t, p) as number,
    sendto: (fd, buf, addr) => Number(s.sendto(fd, ffi.ptr(buf), buf.length, 0, ffi.ptr(addr), addr.length)),
    recv: (fd, buf) => Number(s.recv(fd, ffi.ptr(buf), buf.length, 0)),
    setsockopt: (fd, level, name, value) => s.setsockopt(fd, level, name, ffi.ptr(value), value.length) as number,
    close: (fd) => s.close(fd) as number,
    errno: () => ffi.read.i32(s.__errno_location() as import("bun:ffi").Pointer, 0),
  };
  return loaded;
}

/** The request: nlmsghdr (16 bytes) + unix_diag_req (24 bytes); a dump of all sockets, or the one with inode `ino`. */
function _request(ino: number | null): Uint8Array {
  const buf = new Uint8Array(40);
  const v = new DataView(buf.buffer);
  v.setUint32(0, 40, true); // nlmsg_len
  v.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
  v.setUint16(6, NLM_F_REQUEST | (ino === null ? NLM_F_DUMP : 0), true);
  v.setUint32(8, 1, true); // seq
  buf[16] = AF_UNIX; // sdiag_family
  v.setUint32(20, 0xffffffff, true); // udiag_states: all
  if (ino !== null) v.setUint32(24, ino, true); // udiag_ino
  const show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_UID;
  v.setUint32(28, ino === null ? show : show | UDIAG_SHOW_ICONS, true);
  v.setUint32(32, 0xffffffff, true); // cookie: INET_DIAG_NOCOOKIE
  v.setUint32(36, 0xffffffff, true);
  return buf;
}

/**
 * Decodes one recv()'s worth of netlink messages into `out`. Returns true at NLMSG_DONE; throws on
 * NLMSG_ERROR or a malformed message. Pure (no I/O), so it can be tested with handmade bytes.
 */
export function decodeDiagMessages(buf: Uint8Array, out: DiagUnixSocket[], keep?: (s: DiagUnixSocket) => boolean): boolean {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = v.getUint32(off, true);
    const type = v.getUint16(off + 4, true);
    if (len < 16 || off + len > buf.length) throw new Error(`sock_diag: malformed netlink message (length ${len})`);
    if (type === NLMSG_DONE) {
      // A dump the kernel cut short ends with a negative errno in NLMSG_DONE's payload.
      const errno = len >= 20 ? -v.getInt32(off + 16, true) : 0;
      if (errno > 0) throw Object.assign(new Error(`sock_diag: dump ended with kernel error ${errno}`), { errno });
      return true;
    }
    if (type === NLMSG_ERROR) {
      const errno = len >= 20 ? -v.getInt32(off + 16, true) : 0;
      throw Object.assign(new Error(`sock_diag: kernel error ${errno}`), { errno });
    }
    if (type === SOCK_DIAG_BY_FAMILY && len >= 32) {
      const sock = _decodeSocket(buf.subarray(off + 16, off + len));
      if (!keep || keep(sock)) out.push(sock);
    }
    off += (len + 3) & ~3;
  }
  return false;
}

// Fatal: a name that is not UTF-8 would decode lossily to a string naming some other file.
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The kernel's internal dev_t (major << 20 | minor) in the encoding stat(2) returns, so the two compare. */
function _userDev(kdev: number): number {
  const major = kdev >>> 20;
  const minor = kdev & 0xfffff;
  return (minor & 0xff) + major * 256 + (minor & ~0xff) * 4096;
}

/**
 * A socket name as text: abstract names (leading NUL) as "@name"; path names up to their NUL. null
 * (unknown) where no string would name that socket alone: a name that is not UTF-8, an abstract name
 * with a NUL inside ("\0a\0b" and "\0a@b" would both read "@a@b"), and a relative path, which was
 * bound against its creator's working directory, not ours.
 */
function _decodeName(data: Uint8Array): string | null {
  try {
    if (data[0] === 0) return data.indexOf(0, 1) >= 0 ? null : "@" + utf8.decode(data.subarray(1));
    const nul = data.indexOf(0);
    const path = utf8.decode(nul < 0 ? data : data.subarray(0, nul));
    return path.startsWith("/") ? path : null;
  } catch {
    return null;
  }
}

function _decodeSocket(msg: Uint8Array): DiagUnixSocket {
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const st = msg[2]!;
  const state = st === TCP_LISTEN ? "listen" : st === TCP_ESTABLISHED ? "connected" : st === TCP_SYN_SENT ? "connecting" : "unconnected";
  const sock: DiagUnixSocket = { inode: v.getUint32(4, true), state, path: null, peer: null, vfs: null, uid: null };
  let off = 16; // after struct unix_diag_msg
  while (off + 4 <= msg.length) {
    const alen = v.getUint16(off, true);
    const atype = v.getUint16(off + 2, true) & NLA_TYPE_MASK;
    if (alen < 4 || off + alen > msg.length) break;
    const data = msg.subarray(off + 4, off + alen);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (atype === UNIX_DIAG_NAME && data.length > 0) sock.path = _decodeName(data);
    else if (atype === UNIX_DIAG_VFS && data.length >= 8) sock.vfs = { ino: dv.getUint32(0, true), dev: _userDev(dv.getUint32(4, true)) };
    else if (atype === UNIX_DIAG_PEER && data.length >= 4) sock.peer = dv.getUint32(0, true) || null;
    else if (atype === UNIX_DIAG_UID && data.length >= 4) sock.uid = dv.getUint32(0, true);
    else if (atype === UNIX_DIAG_ICONS) sock.icons = Array.from({ length: data.length >> 2 }, (_, i) => dv.getUint32(i * 4, true));
    off += (alen + 3) & ~3;
  }
  return sock;
}

/** How the exchange reads the kernel's answer; tests replace it to feed handmade pieces. */
export type DiagRecv = (buf: Uint8Array) => number;

/** Options of `dumpUnixSockets` and `queryUnixSocket`. */
export interface DiagOptions {
  /** Instead of a netlink socket: each call fills `buf` with the next piece and returns its length (-errno on error). */
  recv?: DiagRecv;
  /** Most sockets a dump may hold. Default SOCK_DIAG_MAX_SOCKETS. */
  maxSockets?: number;
  /** Most receives a dump may take. Default SOCK_DIAG_MAX_RECEIVES. */
  maxReceives?: number;
  /**
   * Which sockets to keep; the others are decoded and dropped, so memory and the maxSockets limit
   * count only these (a host with a million sockets still answers a question about one path). Default: all.
   */
  keep?: (s: DiagUnixSocket) => boolean;
}

/**
 * Every unix socket in this process's network namespace. Throws when sock_diag is unavailable
 * (kernel without CONFIG_UNIX_DIAG, seccomp), answers with an error, or the dump passes its limits;
 * callers fall back.
 */
export function dumpUnixSockets(options: DiagOptions = {}): DiagUnixSocket[] {
  const { maxSockets = SOCK_DIAG_MAX_SOCKETS, maxReceives = SOCK_DIAG_MAX_RECEIVES } = options;
  return _exchange(_request(null), options.recv, (recv) => {
    const out: DiagUnixSocket[] = [];
    const buf = new Uint8Array(SOCK_DIAG_RECV_BUFFER);
    for (let i = 0; i < maxReceives; i++) {
      const n = _recvOnce(recv, buf);
      if (decodeDiagMessages(buf.subarray(0, n), out, options.keep)) return out;
      if (out.length > maxSockets) throw new Error(`sock_diag: more than ${maxSockets} unix sockets`);
    }
    throw new Error(`sock_diag: dump did not end within ${maxReceives} receives`);
  });
}

/**
 * The one unix socket of this network namespace with inode `inode`, asked for alone (no dump, so the
 * memory it takes does not grow with the host's socket count); null when there is none. Throws when
 * sock_diag is unavailable.
 */
export function queryUnixSocket(inode: number, options: Pick<DiagOptions, "recv"> = {}): DiagUnixSocket | null {
  return _exchange(_request(inode), options.recv, (recv) => {
    const out: DiagUnixSocket[] = [];
    const buf = new Uint8Array(SOCK_DIAG_RECV_BUFFER);
    try {
      decodeDiagMessages(buf.subarray(0, _recvOnce(recv, buf)), out);
    } catch (err) {
      if ((err as { errno?: number }).errno === 2) return null; // ENOENT: no such socket (any more)
      throw err;
    }
    return out.find((s) => s.inode === inode) ?? null;
  });
}

function _recvOnce(recv: DiagRecv, buf: Uint8Array): number {
  for (;;) {
    const n = recv(buf);
    if (n === -4) continue; // EINTR
    if (n < 0) throw new Error(`sock_diag: recv failed: errno ${-n}`);
    if (n === 0) throw new Error("sock_diag: answer ended without NLMSG_DONE");
    return n;
  }
}

/** Sends `req` on a fresh NETLINK_SOCK_DIAG socket and lets `read` take the answer (from `recv` when given). */
function _exchange<T>(req: Uint8Array, recv: DiagRecv | undefined, read: (recv: DiagRecv) => T): T {
  if (recv) return read(recv);
  const c = diagLibc();
  const fd = c.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) throw new Error(`sock_diag: socket() failed: errno ${c.errno()}`);
  try {
    // The kernel answers synchronously; the timeout only guards against a kernel that never does.
    const tv = new Uint8Array(16);
    new DataView(tv.buffer).setBigInt64(0, 2n, true);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv);
    const nladdr = new Uint8Array(12);
    new DataView(nladdr.buffer).setUint16(0, AF_NETLINK, true);
    if (c.sendto(fd, req, nladdr) !== req.length) throw new Error(`sock_diag: send failed: errno ${c.errno()}`);
    return read((buf) => {
      const n = c.recv(fd, buf);
      return n < 0 ? -c.errno() : n;
    });
  } finally {
    c.close(fd);
  }
}
