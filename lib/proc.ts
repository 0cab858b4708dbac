import * as fs from "node:fs";
import { readFilePrefix } from "./bounded-read.ts";
import { under } from "./context.ts";

/** The processes that have any of `targets` open, from /proc/PID/fd; `complete` is false if some were unreadable. */
export function findHolders(
  root: string,
  targets: readonly string[],
): { holders: Map<string, { pid: number; command: string }[]>; complete: boolean } {
  const holders = new Map<string, { pid: number; command: string }[]>();
  const wanted = new Set(targets);
  let complete = true;
  const procDir = under(root, "/proc");
  let entries: string[];
  try {
    entries = fs.readdirSync(procDir);
  } catch {
    return { holders, complete: false };
  }
  const self = String(process.pid);
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || (root === "/" && entry === self)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`${procDir}/${entry}/fd`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") complete = false;
      continue;
    }
    const seen = new Set<string>();
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`${procDir}/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!wanted.has(target) || seen.has(target)) continue;
      seen.add(target);
      const list = holders.get(target) ?? [];
      list.push({ pid: Number(entry), command: processName(procDir, entry) });
      holders.set(target, list);
    }
  }
  return { holders, complete };
}

/** The short command name of a process (comm), or "?" if it has gone. */
export function processName(procDir: string, pid: string): string {
  try {
    // The kernel's comm is 16 bytes; a fixture's could be anything.
    return readFilePrefix(`${procDir}/${pid}/comm`, 256).trim();
  } catch {
    return "?";
  }
}
