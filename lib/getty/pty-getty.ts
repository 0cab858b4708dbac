import { sleep } from "../endpoint.ts";
import { VmchanError } from "../errors.ts";
import type { PortDevice } from "../guest/port-device.ts";
import type { RespawnPolicy } from "./backoff.ts";
import { type GettyProcess, spawnOrThrow, wrap } from "./process.ts";
import { aborted, supervise } from "./supervise.ts";

/** Output the host does not read fast enough is dropped beyond this, as a console drops it (facts (i)). */
const OUTPUT_CAP = 1024 * 1024;
/** After the getty exits, how long its last output may take to come out of the PTY. */
const EOF_GRACE_MS = 300;

export interface PortGettyOptions {
  /** The port's name, for messages. */
  label: string;
  /** The getty's command line, for a tty of "-" (the PTY on its stdin). */
  argv: string[];
  /** TERM, also the PTY's terminal name. */
  term: string;
  stop: AbortSignal;
  policy?: RespawnPolicy;
  log: (line: string) => void;
}

/**
 * A getty on a serial port, through a PTY: one getty per host session. The guest sees a host
 * connect on a serial port (unlike on a console), so each connect gets a fresh login prompt, and a
 * disconnect hangs up the session like a modem line: nobody finds the last user's shell.
 * Within a session the getty is respawned when it exits (a logout gives a new prompt).
 * Returns on stop; throws when the port goes away.
 */
export async function servePortGetty(dev: PortDevice, options: PortGettyOptions): Promise<void> {
  const stopped = aborted(options.stop);
  while (!options.stop.aborted) {
    // waitForHost sleeps on SIGIO; if stop wins the race it finishes on its own at the next wake-up.
    const host = await Promise.race([dev.waitForHost().then(() => true), stopped.then(() => false)]);
    if (!host) return;
    await hostSession(dev, options);
  }
}

async function hostSession(dev: PortDevice, options: PortGettyOptions): Promise<void> {
  const session = new AbortController();
  const endSession = () => session.abort();
  options.stop.addEventListener("abort", endSession, { once: true });
  const output = new OutputQueue(OUTPUT_CAP);
  session.signal.addEventListener("abort", () => output.close(), { once: true });
  // The getty of the moment (none during a respawn delay).
  const current: { pty: PtyGetty | null } = { pty: null };
  let failure: unknown = null;

  // Host -> getty. A read of null is the host's disconnect: the end of the session.
  const reader = (async () => {
    try {
      for (let chunk = await dev.read(); chunk !== null; chunk = await dev.read()) {
        if (session.signal.aborted) break;
        // Between gettys (a respawn delay) keystrokes go nowhere, as on a line with nothing on it.
        await current.pty?.write(chunk);
      }
    } catch (err) {
      failure = err;
    } finally {
      session.abort();
    }
  })();

  // Getty -> host.
  const writer = (async () => {
    try {
      for (let chunk = await output.next(); chunk !== null; chunk = await output.next()) await dev.write(chunk);
    } catch (err) {
      // The host went away mid-write (or the session ended): the reader sees it too.
      if (!session.signal.aborted && !(err instanceof VmchanError)) failure ??= err;
    } finally {
      session.abort();
    }
  })();

  await supervise({
    label: options.label,
    stop: session.signal,
    policy: options.policy,
    log: options.log,
    start: () => {
      current.pty = new PtyGetty(options.argv, options.term, (data) => output.push(data));
      return current.pty.process;
    },
  });
  options.stop.removeEventListener("abort", endSession);
  dev.interrupt();
  await Promise.allSettled([reader, writer]);
  if (output.dropped > 0)
    options.log(`vmchan: getty on ${options.label}: dropped ${output.dropped} bytes of output the host did not read in time`);
  if (failure) throw failure;
}

const ptyHint = "is devpts mounted? (mount -t devpts devpts /dev/pts)";

/** A new PTY; failure is a VmchanError saying what to check. */
function openTerminal(options: Bun.TerminalOptions): Bun.Terminal {
  try {
    return new Bun.Terminal(options);
  } catch (err) {
    throw new VmchanError(`cannot open a PTY: ${(err as Error).message}`, { cause: err, hint: ptyHint });
  }
}

/** Fails (with what to check) when no PTY can be opened, before a getty is promised on a serial port. */
export function checkPty(label: string): void {
  try {
    openTerminal({}).close();
  } catch (err) {
    throw new VmchanError(`cannot serve "${label}" through a PTY: ${(err as VmchanError).message}`, { cause: err, hint: ptyHint });
  }
}

/** A getty on a fresh PTY; writes wait until the PTY has taken the bytes, so a stalled login does not fill memory. */
class PtyGetty {
  readonly process: GettyProcess;
  private readonly terminal: Bun.Terminal;
  private drained: (() => void) | null = null;
  private eof = false;
  private eofSeen: () => void = () => {};

  constructor(argv: string[], term: string, onData: (data: Uint8Array) => void) {
    const eofPromise = new Promise<void>((resolve) => (this.eofSeen = resolve));
    this.terminal = openTerminal({
      cols: 80,
      rows: 24,
      name: term,
      data: (_t, data) => onData(data.slice()),
      drain: () => this.wake(),
      exit: () => {
        this.eof = true;
        this.eofSeen();
        this.wake();
      },
    });
    let proc;
    try {
      proc = spawnOrThrow(argv, { terminal: this.terminal });
    } catch (err) {
      this.terminal.close();
      throw err;
    }
    const close = () => {
      this.eof = true;
      this.wake();
      if (!this.terminal.closed) this.terminal.close();
    };
    // Its last words (a "logout", an error) are still in the PTY when it exits: read them, then close.
    const exited = proc.exited.then(async () => {
      await Promise.race([eofPromise, sleep(EOF_GRACE_MS)]);
      close();
    });
    this.process = wrap(proc, close, exited);
  }

  /** Writes to the getty; resolves when the PTY took it (or is gone). */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.eof || this.terminal.closed) return;
    const taken = new Promise<void>((resolve) => (this.drained = resolve));
    this.terminal.write(chunk);
    await taken;
  }

  private wake(): void {
    const d = this.drained;
    this.drained = null;
    d?.();
  }
}

/** The getty's output waiting for the port: bounded; what does not fit is counted and dropped. */
class OutputQueue {
  dropped = 0;
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;
  private closed = false;
  private wake: (() => void) | null = null;

  constructor(private readonly cap: number) {}

  push(chunk: Uint8Array): void {
    if (this.closed) return;
    if (this.bytes + chunk.byteLength > this.cap) {
      this.dropped += chunk.byteLength;
      return;
    }
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    this.notify();
  }

  /** Makes next() return null from now on. */
  close(): void {
    this.closed = true;
    this.notify();
  }

  /** What is queued (several small chunks joined), or null once closed. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.closed) return null;
      if (this.chunks.length > 0) {
        const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
        this.chunks.length = 0;
        this.bytes = 0;
        return all;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}
