import * as fs from "node:fs";
import { CHUNK_SIZE, type Sink, type Source, sleep } from "./endpoint.ts";
import { errnoOf, VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";

const readAsync = (fd: number, buf: Uint8Array) =>
  new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, buf.byteLength, null, (e, n) => (e ? reject(e) : resolve(n))));
const writeAsync = (fd: number, buf: Uint8Array, off: number) =>
  new Promise<number>((resolve, reject) =>
    fs.write(fd, buf, off, buf.byteLength - off, null, (e, n) => (e ? reject(e) : resolve(n))),
  );

/**
 * Reads a file descriptor (stdin, a file, a pipe) a chunk at a time. A descriptor that someone
 * else made non-blocking answers EAGAIN: back off instead of failing.
 */
export class FdSource implements Source {
  private readonly buf = new Uint8Array(CHUNK_SIZE);
  constructor(
    private readonly fd: number,
    private readonly label: string,
  ) {}

  async read(): Promise<Uint8Array | null> {
    let backoff = 1;
    for (;;) {
      try {
        const n = await readAsync(this.fd, this.buf);
        return n === 0 ? null : this.buf.subarray(0, n);
      } catch (err) {
        if (errnoOf(err) !== "EAGAIN") throw new VmchanError(`cannot read ${this.label}: ${(err as Error).message}`, { cause: err });
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 20);
      }
    }
  }
}

/**
 * Whether standard descriptor `fd` was closed when vmchan started (`>&-`). The runtime then puts
 * /dev/null there, opened close-on-exec, which no descriptor inherited from a shell ever is; so
 * writes would "succeed" into nothing. Only /proc can tell; without it the answer is false.
 */
export function closedAtStart(fd: number): boolean {
  if (fd < 0 || fd > 2) return false;
  try {
    if (fs.readlinkSync(`/proc/self/fd/${fd}`) !== "/dev/null") return false;
    const flags = /^flags:\s+([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
    return flags !== undefined && (Number.parseInt(flags, 8) & 0o2000000) !== 0;
  } catch {
    return false;
  }
}

/** The error for output that cannot be delivered at all (closed, full, failing): never retried, never success. */
export class OutputFailed extends VmchanError {
  constructor(label: string, cause: string, err?: unknown) {
    super(`cannot write ${label}: ${cause}`, { code: ExitCode.failure, hint: "give vmchan somewhere to write: a file, a pipe, or /dev/null", cause: err });
    this.name = "OutputFailed";
  }
}

/** Writes every byte to a file descriptor (stdout, a file), handling partial writes and EAGAIN. */
export class FdSink implements Sink {
  /** Throws OutputFailed at once when `fd` is a standard descriptor that was closed at start (see closedAtStart). */
  constructor(
    private readonly fd: number,
    private readonly label: string,
  ) {
    if (closedAtStart(fd)) throw new OutputFailed(label, "it was closed when vmchan started");
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    let backoff = 1;
    while (off < chunk.byteLength) {
      try {
        off += await writeAsync(this.fd, chunk, off);
        backoff = 1;
      } catch (err) {
        const code = errnoOf(err);
        if (code === "EPIPE") throw new OutputClosed(this.label);
        if (code === "EBADF") throw new OutputFailed(this.label, `it is closed (EBADF) after ${off} bytes of this chunk`, err);
        if (code !== "EAGAIN") throw new OutputFailed(this.label, (err as Error).message, err);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 20);
      }
    }
  }
}

/**
 * Writes every byte of `data` to `fd` before returning (text output: tables, JSON, watch lines). The runtime's
 * own stdout queues writes to a pipe and may still hold them when the process exits, which would cut the output
 * while the exit code says success; this does not return until the kernel has all of it.
 */
export function writeAllSync(fd: number, data: Uint8Array, label: string): void {
  let off = 0;
  let backoff = 1;
  while (off < data.byteLength) {
    try {
      off += fs.writeSync(fd, data, off);
      backoff = 1;
    } catch (err) {
      const code = errnoOf(err);
      if (code === "EPIPE") throw new OutputClosed(label);
      if (code !== "EAGAIN") throw new OutputFailed(label, (err as Error).message, err);
      // A non-blocking descriptor whose reader is slow: wait a little, synchronously (the data must go first).
      Atomics.wait(pause, 0, 0, backoff);
      backoff = Math.min(backoff * 2, 20);
    }
  }
}
const pause = new Int32Array(new SharedArrayBuffer(4));

/** The reader of our output went away (`vmchan cat ... | head`): end quietly, as SIGPIPE would. */
export class OutputClosed extends VmchanError {
  constructor(label: string) {
    super(`${label} was closed by its reader`, { code: ExitCode.brokenPipe });
    this.name = "OutputClosed";
  }
}

/**
 * Writes all of `text` to `fd` synchronously (help and version text, which commander hands over
 * synchronously). Throws OutputFailed when the descriptor was closed at start or a write fails,
 * OutputClosed when the reader has gone: the caller must not report success.
 */
export function writeTextSync(fd: number, text: string, label: string): void {
  if (closedAtStart(fd)) throw new OutputFailed(label, "it was closed when vmchan started");
  writeAllSync(fd, Buffer.from(text, "utf8"), label);
}

/** Several sources one after the other (send FILE1 FILE2 ...). */
export class ConcatSource implements Source {
  private index = 0;
  constructor(private readonly sources: ReadonlyArray<() => Source>) {}
  private current: Source | null = null;

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      if (!this.current) {
        const next = this.sources[this.index++];
        if (!next) return null;
        this.current = next();
      }
      const chunk = await this.current.read();
      if (chunk) return chunk;
      this.current = null;
    }
  }
}

/** One fixed chunk (send --data). */
export function bytesSource(bytes: Uint8Array): Source {
  let done = false;
  return {
    read: async () => {
      if (done || bytes.byteLength === 0) return null;
      done = true;
      return bytes;
    },
  };
}
