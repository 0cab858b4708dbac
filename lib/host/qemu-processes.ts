import * as fs from "node:fs";
import { readFileBounded, TooLargeError } from "./bounded-read.ts";
import { isQemuCommand, splitCmdline } from "./cmdline.ts";
import { describeError } from "./describe-error.ts";

/** A running QEMU system emulator and its argv. */
export interface QemuProcess {
  pid: number;
  argv: string[];
}

/**
 * Most of /proc/PID/cmdline read. Linux gives argv at most a quarter of the stack limit (2 MiB with the usual
 * 8 MiB); 4 MiB leaves room for a raised limit while a process that makes itself look like a huge QEMU costs
 * bounded memory. A longer command line is skipped with a note.
 */
export const MAX_CMDLINE = 4 * 1024 * 1024;

/**
 * Finds QEMU processes under `procDir` by argv[0] (`qemu-system-*`, `qemu-kvm`), falling back to
 * /proc/PID/exe for launchers that rewrite argv[0]. A cmdline that exists but cannot be read gives a note;
 * a process that exits meanwhile is skipped quietly.
 */
export function findQemuProcesses(procDir: string): { processes: QemuProcess[]; notes: string[] } {
  const processes: QemuProcess[] = [];
  const notes: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(procDir);
  } catch (err) {
    return { processes, notes: [`cannot read ${procDir}: ${describeError(err)}`] };
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let raw: string;
    try {
      raw = readFileBounded(`${procDir}/${entry}/cmdline`, MAX_CMDLINE);
    } catch (err) {
      if (err instanceof TooLargeError) {
        notes.push(`skipped process ${entry}: ${err.message} (no QEMU command line is that long)`);
        continue;
      }
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ESRCH") notes.push(`cannot read ${procDir}/${entry}/cmdline: ${describeError(err)}`);
      continue;
    }
    const argv = splitCmdline(raw);
    if (argv.length === 0) continue; // kernel thread or zombie
    if (!isQemuCommand(argv[0]!) && !_exeIsQemu(procDir, entry)) continue;
    processes.push({ pid: Number(entry), argv });
  }
  processes.sort((a, b) => a.pid - b.pid);
  return { processes, notes };
}

function _exeIsQemu(procDir: string, pid: string): boolean {
  try {
    // After a package upgrade the link reads "/usr/bin/qemu-system-x86_64 (deleted)".
    return isQemuCommand(fs.readlinkSync(`${procDir}/${pid}/exe`).replace(/ \(deleted\)$/, ""));
  } catch {
    return false; // another user's process, or gone: it cannot be told apart, and most are not QEMU
  }
}
