/**
 * The few libc calls Node's fs lacks (poll, fcntl, ioctl), through bun:ffi, loaded on first use
 * so that --help and completions never pay for dlopen.
 */
import type { Pointer } from "bun:ffi";

export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

const F_GETFL = 3;
const F_SETFL = 4;
const F_SETOWN = 8;
export const O_NONBLOCK = 0o4000;
export const O_ASYNC = 0o20000;
/** SIOCOUTQ (= TIOCOUTQ): bytes in a socket's send queue not yet taken by the peer. */
const SIOCOUTQ = 0x5411;

interface Libc {
  fcntl(fd: number, cmd: number, arg: number): number;
  poll(fds: Pointer, nfds: number, timeout: number): number;
  ioctl(fd: number, request: number, arg: Pointer): number;
  getpid(): number;
  read(fd: number, buf: Uint8Array, off: number, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Int32Array, len: number): number;
  write(fd: number, buf: Uint8Array, off: number, len: number): number;
  errno(): number;
  ptr(view: Int32Array): Pointer;
}

let loaded: Libc | undefined;

/** Where libc may be: glibc, then musl (the musl builds of vmchan). */
const LIBC_NAMES = ["libc.so.6", "libc.so", "/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1"];

/** dlopen()s libc with `symbols`, trying glibc and musl names; `what` names the need in the error. */
export function openLibc<S extends Record<string, import("bun:ffi").FFIFunction>>(symbols: S, what: string) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ffi = require("bun:ffi") as typeof import("bun:ffi");
  let lastError: unknown;
  for (const name of LIBC_NAMES) {
    try {
      return { ffi, lib: ffi.dlopen(name, symbols) };
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`cannot load libc for ${what}: ${String(lastError)}`);
}

function libc(): Libc {
  if (loaded) return loaded;
  const { FFIType } = require("bun:ffi") as typeof import("bun:ffi");
  const { ffi, lib } = openLibc(
    {
      fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i64], returns: FFIType.i32 },
      poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
      ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
      getpid: { args: [], returns: FFIType.i32 },
      read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
      setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
      __errno_location: { args: [], returns: FFIType.ptr },
    },
    "poll/fcntl/ioctl/read/write",
  );
  const s = lib.symbols;
  loaded = {
    fcntl: (fd, cmd, arg) => s.fcntl(fd, cmd, arg) as number,
    poll: (fds, nfds, timeout) => s.poll(fds, nfds, timeout) as number,
    ioctl: (fd, request, arg) => s.ioctl(fd, request, arg) as number,
    getpid: () => s.getpid() as number,
    read: (fd, buf, off, len) => Number(s.read(fd, ffi.ptr(buf, off), len)),
    setsockopt: (fd, level, name, value, len) => s.setsockopt(fd, level, name, ffi.ptr(value), len) as number,
    write: (fd, buf, off, len) => Number(s.write(fd, ffi.ptr(buf, off), len)),
    errno: () => ffi.read.i32(s.__errno_location() as Pointer, 0),
    ptr: (view) => ffi.ptr(view),
  };
  return loaded;
}

/** poll(2) one fd with a zero timeout: the revents bits right now, never blocking the JS thread. */
export function pollNow(fd: number, events = POLLIN | POLLOUT): number {
  const c = libc();
  const buf = new Int32Array(2);
  buf[0] = fd;
  const shorts = new Int16Array(buf.buffer);
  shorts[2] = events;
  const rc = c.poll(c.ptr(buf), 1, 0);
  if (rc < 0) throw new Error(`poll failed: errno ${c.errno()}`);
  return rc === 0 ? 0 : shorts[3]!;
}

/**
 * Makes `fd` non-blocking and directs its SIGIO to this process (F_SETOWN); with `async` (the
 * default) also turns on O_ASYNC, so the kernel signals state changes (connect, data, hang-up).
 */
export function enableSigio(fd: number, options: { async?: boolean } = {}): void {
  const c = libc();
  if (c.fcntl(fd, F_SETOWN, c.getpid()) < 0) throw new Error(`fcntl(F_SETOWN) failed: errno ${c.errno()}`);
  const flags = c.fcntl(fd, F_GETFL, 0);
  const next = (flags | O_NONBLOCK | O_ASYNC) & ~(options.async === false ? O_ASYNC : 0);
  if (flags < 0 || c.fcntl(fd, F_SETFL, next) < 0) throw new Error(`fcntl(F_SETFL) failed: errno ${c.errno()}`);
}

/** Sets or clears O_ASYNC on `fd` (F_SETOWN must have been done, see enableSigio). */
export function setAsync(fd: number, on: boolean): void {
  const c = libc();
  const flags = c.fcntl(fd, F_GETFL, 0);
  if (flags < 0) return;
  const next = on ? flags | O_ASYNC : flags & ~O_ASYNC;
  if (next !== flags) c.fcntl(fd, F_SETFL, next);
}

/** Sets or clears O_NONBLOCK on `fd`, returning the previous flags (to restore shared descriptors). */
export function setNonBlocking(fd: number, on: boolean): number {
  const c = libc();
  const flags = c.fcntl(fd, F_GETFL, 0);
  if (flags < 0) throw new Error(`fcntl(F_GETFL) failed: errno ${c.errno()}`);
  const next = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (next !== flags && c.fcntl(fd, F_SETFL, next) < 0) throw new Error(`fcntl(F_SETFL) failed: errno ${c.errno()}`);
  return flags;
}

/** Bytes still queued in a socket's send buffer (SIOCOUTQ), or -1 when the fd is not a socket. */
export function socketOutq(fd: number): number {
  const c = libc();
  const out = new Int32Array(1);
  return c.ioctl(fd, SIOCOUTQ, c.ptr(out)) < 0 ? -1 : out[0]!;
}

export const EINTR = 4;
export const EAGAIN = 11;

/**
 * read(2) into `buf` at `off`: the byte count, 0 at end of stream, or -errno. No exception on
 * EAGAIN, so a busy relay makes no garbage; and no fresh buffer per read, unlike a socket's
 * data callback, whose buffers the garbage collector frees late.
 */
export function readFd(fd: number, buf: Uint8Array, off: number, len: number): number {
  const c = libc();
  const n = c.read(fd, buf, off, len);
  return n < 0 ? -c.errno() : n;
}

/** write(2) from `buf` at `off`: the byte count taken, or -errno (see readFd). */
export function writeFd(fd: number, buf: Uint8Array, off: number, len: number): number {
  const c = libc();
  const n = c.write(fd, buf, off, len);
  return n < 0 ? -c.errno() : n;
}

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

/**
 * Asks for a send buffer of `bytes` (the kernel caps it at net.core.wmem_max and doubles it), so a
 * relay chunk fits in one write instead of several EAGAIN rounds. Best effort: false if refused.
 */
export function setSendBuffer(fd: number, bytes: number): boolean {
  return libc().setsockopt(fd, SOL_SOCKET, SO_SNDBUF, Int32Array.of(bytes), 4) === 0;
}
