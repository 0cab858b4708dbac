import { FFIType, ptr } from "bun:ffi";
import { openLibc } from "../../lib/sys/libc.ts";

// Bare unix socket fds through libc: node:net neither exposes fds nor binds arbitrary bytes as a path.
const { lib: libc } = openLibc(
  {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  },
  "test unix sockets",
);

/** A unix stream socket bound to `path` (any bytes but NUL, up to 107 of them) and listening: its fd. */
export function listeningUnixFd(path: string): number {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length > 107) throw new Error(`socket path too long (${bytes.length} bytes): ${JSON.stringify(path)}`);
  const fd = libc.symbols.socket(1 /* AF_UNIX */, 1 /* SOCK_STREAM */, 0);
  const addr = new Uint8Array(110); // struct sockaddr_un
  new DataView(addr.buffer).setUint16(0, 1, true);
  addr.set(bytes, 2);
  if (fd < 0 || libc.symbols.bind(fd, ptr(addr), 2 + bytes.length + 1) !== 0 || libc.symbols.listen(fd, 4) !== 0) {
    if (fd >= 0) libc.symbols.close(fd);
    throw new Error(`cannot listen on ${JSON.stringify(path)}`);
  }
  return fd;
}

export function closeFd(fd: number): void {
  libc.symbols.close(fd);
}

/** The inode of the socket behind one of our fds (/proc/self/fd/N -> "socket:[INODE]"). */
export function socketInode(fd: number): number {
  const target = require("node:fs").readlinkSync(`/proc/self/fd/${fd}`) as string;
  const m = /^socket:\[(\d+)\]$/.exec(target);
  if (!m) throw new Error(`fd ${fd} is not a socket: ${target}`);
  return Number(m[1]);
}
