/**
 * Process plumbing and statistics for the benchmark: spawning the peers and relays of bench/peer.ts,
 * sampling a relay's memory and CPU from /proc, medians.
 */
import { readFileSync } from "node:fs";

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

const bun = process.execPath;
const peerScript = new URL("./peer.ts", import.meta.url).pathname;

export type Proc = ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">>;

/** Reads a spawned process's stdout line by line. */
export class LineReader {
  readonly #reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> };
  readonly #decoder = new TextDecoder();
  #buf = "";
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** The next line, or null at end of output; rejects after `timeoutMs`. */
  async next(timeoutMs: number, what: string): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return line;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: no output within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        this.#reader.read(),
        new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), left))),
      ]);
      clearTimeout(timer);
      if (r === "timeout") throw new Error(`${what}: no output within ${timeoutMs} ms`);
      if (r.done || !r.value) return this.#buf ? this.#take() : null;
      this.#buf += this.#decoder.decode(r.value, { stream: true });
    }
  }

  #take(): string {
    const line = this.#buf;
    this.#buf = "";
    return line;
  }
}

/** A running peer (bench/peer.ts MODE ...). */
export interface Peer {
  proc: Proc;
  lines: LineReader;
  stderr: Promise<string>;
}

export function startPeer(args: string[]): Peer {
  const proc = Bun.spawn([bun, peerScript, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { proc, lines: new LineReader(proc.stdout), stderr: new Response(proc.stderr).text() };
}

/** The peer's next JSON result line; a failed peer's stderr becomes the error. */
export async function peerResult<T>(peer: Peer, what: string, timeoutMs: number): Promise<T> {
  let line: string | null;
  try {
    line = await peer.lines.next(timeoutMs, what);
  } catch (err) {
    peer.proc.kill("SIGKILL");
    throw new Error(`${(err as Error).message}; stderr: ${(await peer.stderr).trim()}`);
  }
  if (line === null) throw new Error(`${what} ended without a result (exit ${await peer.proc.exited}): ${(await peer.stderr).trim()}`);
  return JSON.parse(line) as T;
}

/** Waits for a process to exit; SIGKILLs it after `ms`. Returns whether it exited by itself. */
export async function reap(proc: { exited: Promise<number>; kill(sig?: string | number): void }, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const own = await Promise.race([proc.exited.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  if (!own) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
  return own;
}

/** Memory and CPU of a process, from /proc/PID/status and /proc/PID/stat. */
export interface ProcSample {
  /** Peak resident set size (VmHWM), bytes. */
  hwm: number;
  /** Current resident set size (VmRSS), bytes. */
  rss: number;
  /** User + system CPU time, seconds. */
  cpu: number;
}

const ticks = 100; // USER_HZ: 100 on every Linux that matters

export function sampleProc(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    if (!status.includes("VmHWM:")) return null; // a zombie: exited, not yet reaped
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "(comm) ": state is field 3, utime 14, stime 15 (1-based) → indexes 11 and 12 here.
    const cpu = (Number(fields[11]) + Number(fields[12])) / ticks;
    return { hwm: kb("VmHWM"), rss: kb("VmRSS"), cpu };
  } catch {
    return null; // exited
  }
}

/** Samples a process every `intervalMs` until stopped; keeps the largest RSS seen and the last sample. */
export class Sampler {
  maxRss = 0;
  last: ProcSample | null = null;
  readonly #timer: ReturnType<typeof setInterval>;
  constructor(readonly pid: number, intervalMs = 10) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }
  sample(): void {
    const s = sampleProc(this.pid);
    if (!s) return;
    this.last = s;
    this.maxRss = Math.max(this.maxRss, s.rss);
  }
  stop(): ProcSample | null {
    this.sample();
    clearInterval(this.#timer);
    return this.last;
  }
}

/** Median, min, max of a list of numbers. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(values: readonly number[]): Stat {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length === 0 ? NaN : v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0] ?? NaN, max: v.at(-1) ?? NaN, n: v.length };
}

/** "1234 (1200–1300)" with `digits` decimals. */
export function fmt(s: Stat, digits = 0): string {
  if (s.n === 0) return "n/a";
  const f = (x: number) => x.toFixed(digits);
  return s.n === 1 ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

export function ratio(a: Stat, b: Stat): string {
  return a.n && b.n && b.median > 0 ? (a.median / b.median).toFixed(2) : "n/a";
}

/** Runs a command to completion and returns its trimmed stdout ("" on failure). */
export function output(argv: string[]): string {
  try {
    const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    return (r.stdout.toString() || r.stderr.toString()).trim();
  } catch {
    return "";
  }
}
