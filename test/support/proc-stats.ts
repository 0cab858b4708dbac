import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dumpUnixSockets } from "../../lib/sys/sock-diag.ts";

/**
 * A process's resident memory now and at its peak, in bytes (VmRSS, VmHWM), or null once it has exited.
 * An exited process that is not yet reaped (a zombie) still has /proc/PID/status but no Vm* lines: that is
 * "gone", not a reading, and must never turn into NaN in a peak.
 */
export function memoryOf(pid: number): { rss: number; peak: number } | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const kib = (key: string) => status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1];
  const rss = kib("VmRSS");
  const peak = kib("VmHWM");
  if (rss === undefined || peak === undefined) return null;
  return { rss: Number(rss) * 1024, peak: Number(peak) * 1024 };
}

/** Samples a running process's memory every `everyMs`; `stop()` returns the highest VmHWM seen (0 if never alive). */
export function memorySampler(pid: number, everyMs = 50): { stop(): number } {
  let peak = 0;
  const sample = () => {
    const m = memoryOf(pid);
    if (m) peak = Math.max(peak, m.peak);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** How many file descriptors a process has open. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Whether a unix socket listens at `path`: a listening socket bound to the very file there (sock_diag's device
 * and inode, so a socket of the same name elsewhere does not count), or,
 * without sock_diag, one /proc/net/unix shows under that name. A socket file exists from bind() on, a moment
 * before listen(): a connect in between is refused, so tests wait for this.
 */
export function unixListening(path: string): boolean {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch {
    return false;
  }
  if (!st.isSocket()) return false;
  try {
    return dumpUnixSockets().some((e) => e.state === "listen" && e.vfs !== null && e.vfs.ino === st.ino && e.vfs.dev === st.dev);
  } catch {
    // no sock_diag: names from /proc/net/unix (flag __SO_ACCEPTCON)
  }
  let table: string;
  try {
    table = readFileSync("/proc/net/unix", "utf8");
  } catch {
    return false;
  }
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f.slice(7).join(" ") === path && (parseInt(f[3]!, 16) & 0x10000) !== 0) return true;
  }
  return false;
}

/** Waits until a unix socket listens at `path`; `alive` reports an early exit of the process meant to make it. */
export async function waitListening(path: string, timeoutMs = 20_000, alive: () => string | null = () => null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!unixListening(path)) {
    const gone = alive();
    if (gone) throw new Error(`nothing listens at ${path}: ${gone}`);
    if (Date.now() > deadline) throw new Error(`nothing listened at ${path} within ${timeoutMs} ms (${existsSync(path) ? "the file exists" : "no file"})`);
    await Bun.sleep(20);
  }
}
