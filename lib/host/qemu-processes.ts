import * as fs from "node:fs";
import { readFileBounded, TooLargeError } from "../bounded-read.ts";
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
 * Most command-line bytes of all QEMU processes taken in one look. Any user can start processes that look like
 * QEMU; each is bounded above, and this bounds their sum (parsed, a megabyte of ports costs tens of MiB). Real
 * command lines are a few KiB (a hundred VMs fit in 1 MiB), so processes of root and of this user come first,
 * then the smallest, and the largest are skipped, with a note.
 */
export const MAX_CMDLINES_TOTAL = 4 * 1024 * 1024;

/**
 * Finds QEMU processes under `procDir` by argv[0] (`qemu-system-*`, `qemu-kvm`), falling back to
 * /proc/PID/exe for launchers that rewrite argv[0]. A cmdline that exists but cannot be read gives a note;
 * a process that exits meanwhile is skipped quietly. Command lines are bounded one by one (MAX_CMDLINE) and
 * together (MAX_CMDLINES_TOTAL): the first pass keeps only sizes, the second reads the ones taken again.
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
  const found: { pid: string; size: number; trusted: boolean }[] = [];
  const self = process.getuid?.() ?? -1;
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = _readArgv(procDir, entry, notes);
    if (argv === null) continue;
    if (!isQemuCommand(argv[0]!) && !_exeIsQemu(procDir, entry)) continue;
    found.push({ pid: entry, size: argv.reduce((n, a) => n + a.length + 1, 0), trusted: _ownedBy(procDir, entry, [0, self]) });
  }
  found.sort((a, b) => Number(b.trusted) - Number(a.trusted) || a.size - b.size || Number(a.pid) - Number(b.pid));
  let total = 0;
  const skipped: string[] = [];
  for (const { pid, size } of found) {
    if (total + size > MAX_CMDLINES_TOTAL) {
      skipped.push(pid);
      continue;
    }
    total += size;
    const argv = _readArgv(procDir, pid, []);
    if (argv !== null) processes.push({ pid: Number(pid), argv });
  }
  if (skipped.length > 0) {
    const list = skipped.slice(0, 10).join(", ") + (skipped.length > 10 ? ", ..." : "");
    notes.push(
      `skipped ${skipped.length} QEMU process${skipped.length === 1 ? "" : "es"} (pid ${list}): their command lines ` +
        `exceed ${MAX_CMDLINES_TOTAL / 1024 / 1024} MiB with the others, the most read in one look (the longest are skipped)`,
    );
  }
  processes.sort((a, b) => a.pid - b.pid);
  return { processes, notes };
}

/** A process's argv, or null (gone, unreadable with a note, a kernel thread, or over MAX_CMDLINE with a note). */
function _readArgv(procDir: string, pid: string, notes: string[]): string[] | null {
  let raw: string;
  try {
    raw = readFileBounded(`${procDir}/${pid}/cmdline`, MAX_CMDLINE);
  } catch (err) {
    if (err instanceof TooLargeError) {
      notes.push(`skipped process ${pid}: ${err.message} (no QEMU command line is that long)`);
      return null;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ESRCH") notes.push(`cannot read ${procDir}/${pid}/cmdline: ${describeError(err)}`);
    return null;
  }
  const argv = splitCmdline(raw);
  return argv.length === 0 ? null : argv; // empty: a kernel thread or zombie
}

function _ownedBy(procDir: string, pid: string, uids: readonly number[]): boolean {
  try {
    return uids.includes(fs.statSync(`${procDir}/${pid}`).uid);
  } catch {
    return false;
  }
}

function _exeIsQemu(procDir: string, pid: string): boolean {
  try {
    // After a package upgrade the link reads "/usr/bin/qemu-system-x86_64 (deleted)".
    return isQemuCommand(fs.readlinkSync(`${procDir}/${pid}/exe`).replace(/ \(deleted\)$/, ""));
  } catch {
    return false; // another user's process, or gone: it cannot be told apart, and most are not QEMU
  }
}
