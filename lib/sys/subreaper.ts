/**
 * Child subreaper (prctl PR_SET_CHILD_SUBREAPER) and reaping of adopted processes, through bun:ffi.
 * A command vmchan starts may leave its process group (setsid, a daemon's double fork); as a
 * subreaper vmchan becomes the parent of those orphans instead of init, so it can still find
 * (/proc/PID/stat ppid), end and reap them.
 */
import type { Pointer } from "bun:ffi";
import { openLibc } from "./libc.ts";

const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

interface Calls {
  prctl(option: number, arg: number): number;
  waitpid(pid: number): number;
}

let loaded: Calls | undefined;

function calls(): Calls {
  if (loaded) return loaded;
  const { FFIType } = require("bun:ffi") as typeof import("bun:ffi");
  const { lib } = openLibc(
    {
      prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
      waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    },
    "the child subreaper",
  );
  const s = lib.symbols;
  loaded = {
    prctl: (option, arg) => s.prctl(option, arg, 0, 0, 0) as number,
    waitpid: (pid) => s.waitpid(pid, null as unknown as Pointer, WNOHANG) as number,
  };
  return loaded;
}

/** Makes this process a child subreaper; false when the kernel or libc refuses (then orphans go to init as before). */
export function setChildSubreaper(): boolean {
  try {
    return calls().prctl(PR_SET_CHILD_SUBREAPER, 1) === 0;
  } catch {
    return false;
  }
}

/** Reaps `pid` if it is a child of ours that has exited (waitpid WNOHANG); true when it was reaped. */
export function reapIfExited(pid: number): boolean {
  try {
    return calls().waitpid(pid) === pid;
  } catch {
    return false;
  }
}
