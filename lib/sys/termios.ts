/**
 * Terminal modes through libc (tcgetattr, tcsetattr, cfmakeraw), loaded on first use. The saved
 * struct termios is restored byte for byte, so `stty -g` reads the same before and after.
 */
import type { Pointer } from "bun:ffi";
import { openLibc } from "./libc.ts";

const TCSANOW = 0;
/** sizeof(struct termios) is 60 on Linux (glibc and musl); a little more does no harm. */
const TERMIOS_SIZE = 64;

interface Termios {
  tcgetattr(fd: number, buf: Uint8Array): number;
  tcsetattr(fd: number, action: number, buf: Uint8Array): number;
  cfmakeraw(buf: Uint8Array): void;
  isatty(fd: number): number;
  errno(): number;
}

let loaded: Termios | undefined;

function termios(): Termios {
  if (loaded) return loaded;
  const { FFIType } = require("bun:ffi") as typeof import("bun:ffi");
  const { ffi, lib } = openLibc(
    {
      tcgetattr: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      tcsetattr: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      cfmakeraw: { args: [FFIType.ptr], returns: FFIType.void },
      isatty: { args: [FFIType.i32], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    },
    "termios",
  );
  const s = lib.symbols;
  loaded = {
    tcgetattr: (fd, buf) => s.tcgetattr(fd, ffi.ptr(buf)) as number,
    tcsetattr: (fd, action, buf) => s.tcsetattr(fd, action, ffi.ptr(buf)) as number,
    cfmakeraw: (buf) => void s.cfmakeraw(ffi.ptr(buf)),
    isatty: (fd) => s.isatty(fd) as number,
    errno: () => ffi.read.i32(s.__errno_location() as Pointer, 0),
  };
  return loaded;
}

/** Whether `fd` is a terminal. */
export function isTerminal(fd: number): boolean {
  return termios().isatty(fd) === 1;
}

/**
 * Puts the terminal on `fd` in raw mode (no echo, no line editing, no signals from keys, no output
 * processing, 8-bit bytes) and returns a function that restores the saved settings exactly; it may be
 * called any number of times, from a signal or exit handler too (it is synchronous).
 */
export function enterRawMode(fd: number): () => void {
  const t = termios();
  const saved = new Uint8Array(TERMIOS_SIZE);
  if (t.tcgetattr(fd, saved) !== 0) throw new Error(`tcgetattr failed: errno ${t.errno()}`);
  const raw = saved.slice();
  t.cfmakeraw(raw);
  if (t.tcsetattr(fd, TCSANOW, raw) !== 0) throw new Error(`tcsetattr failed: errno ${t.errno()}`);
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    t.tcsetattr(fd, TCSANOW, saved);
  };
}
