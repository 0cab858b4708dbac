/** SO_PEERCRED through bun:ffi: who made the unix socket at the other end of a connection. */
import { openLibc } from "./libc.ts";

/** The peer's credentials as the kernel recorded them when it called listen() or connect(). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let getsockopt: ((fd: number, buf: Uint8Array, len: Uint32Array) => number) | undefined;

/** The credentials of the peer of unix socket `fd`; null when the kernel gives none (not a unix socket). */
export function peerCredentials(fd: number): PeerCredentials | null {
  if (!getsockopt) {
    const { FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    const { ffi, lib } = openLibc(
      { getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } },
      "SO_PEERCRED",
    );
    getsockopt = (f, buf, len) => lib.symbols.getsockopt(f, SOL_SOCKET, SO_PEERCRED, ffi.ptr(buf), ffi.ptr(len)) as number;
  }
  const buf = new Uint8Array(12); // struct ucred
  const len = Uint32Array.of(12);
  if (getsockopt(fd, buf, len) !== 0 || len[0] !== 12) return null;
  const v = new DataView(buf.buffer);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}
