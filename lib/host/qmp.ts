import * as net from "node:net";

/** The data of a QMP event (its shape depends on the event). */
export type QmpEventData = Record<string, unknown>;

/** One asynchronous QMP event, e.g. `VSERPORT_CHANGE` or `DEVICE_DELETED`. */
export interface QmpEvent {
  event: string;
  data: QmpEventData;
  /** `{ seconds, microseconds }` as QEMU sends it. */
  timestamp: unknown;
}

/** A QMP command failed: QEMU's error `class` and `desc`, plus the command that failed. */
export class QmpError extends Error {
  readonly errorClass: string;
  readonly desc: string;
  readonly command: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP command "${command}" failed: ${desc} (${errorClass})`);
    this.name = "QmpError";
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

export interface QmpTimeoutOptions {
  /** How long to wait for QEMU's answer. Default 30000 ms. */
  timeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const defaultTimeoutMs = 30_000;

/** A client for QEMU's machine protocol (QMP) on a unix socket: commands, replies matched by id, events. */
export class QmpClient {
  /** The greeting's `QMP` object (version, capabilities). */
  readonly greeting: Record<string, unknown>;
  readonly #socket: net.Socket;
  readonly #pending = new Map<string, Pending>();
  readonly #listeners = new Set<(event: QmpEvent) => void>();
  #nextId = 1;
  #closedError: Error | null = null;

  private constructor(socket: net.Socket, greeting: Record<string, unknown>) {
    this.#socket = socket;
    this.greeting = greeting;
  }

  /** Connects to the QMP socket at `path`, reads the greeting and enters command mode (qmp_capabilities). */
  static async connect(path: string, opts: QmpTimeoutOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    const socket = net.createConnection({ path });
    const lines = _lineSplitter();
    let client: QmpClient | null = null;
    // Messages that arrive in the same packet as the greeting must not be lost, so one data handler
    // serves both phases: before the greeting it resolves `greeted`, afterwards the client handles them.
    const greeted = new Promise<QmpClient>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`QMP connect to "${path}" failed: no greeting within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.on("error", (err) => (client ? client.#shutdown(err) : fail(new Error(`QMP connect to "${path}" failed: ${err.message}`))));
      socket.on("close", () => (client ? client.#shutdown(new Error("QMP connection closed")) : fail(new Error(`QMP connect to "${path}" failed: closed before the greeting`))));
      socket.on("data", (chunk: Buffer) => {
        let got: string[];
        try {
          got = lines(chunk);
        } catch (err) {
          socket.destroy();
          const e = err as Error;
          return client ? client.#shutdown(e) : fail(new Error(`QMP connect to "${path}" failed: ${e.message}`));
        }
        for (const line of got) {
          if (client) {
            client.#handleLine(line);
            continue;
          }
          const msg = _parse(line);
          const qmp = msg?.QMP;
          if (!isRecord(qmp)) return fail(new Error(`QMP connect to "${path}" failed: unexpected greeting ${JSON.stringify(line.slice(0, 200))}`));
          clearTimeout(timer);
          client = new QmpClient(socket, qmp);
          resolve(client);
        }
      });
    });
    const c = await greeted;
    try {
      await c.execute("qmp_capabilities", undefined, { timeoutMs });
    } catch (err) {
      c.close();
      throw err;
    }
    return c;
  }

  /** Runs a QMP command and resolves with its `return` value; rejects with QmpError when QEMU reports an error. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpTimeoutOptions = {}): Promise<T> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = `vmchan-${this.#nextId++}`;
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`QMP command "${command}" failed: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: Record<string, unknown> = { execute: command, id };
      if (args !== undefined) msg.arguments = args;
      this.#socket.write(JSON.stringify(msg) + "\n");
    });
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /**
   * Resolves with the next event called `name` whose data satisfies `pred`.
   * Only events that arrive after the call count: start waiting before triggering the event.
   */
  waitEvent(name: string, pred: (data: QmpEventData) => boolean = () => true, timeoutMs = defaultTimeoutMs): Promise<QmpEvent> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    return new Promise<QmpEvent>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        off();
        this.#listeners.delete(onClose);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`QMP event "${name}" did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onEvent((ev) => {
        if (ev.event !== name || !pred(ev.data)) return;
        done();
        resolve(ev);
      });
      // #shutdown calls listeners with a synthetic close event so waiters fail at once instead of timing out.
      const onClose = (ev: QmpEvent) => {
        if (ev.event !== closeEvent) return;
        done();
        reject(this.#closedError ?? new Error("QMP connection closed"));
      };
      this.#listeners.add(onClose);
    });
  }

  /** Closes the connection; pending commands and waits reject. */
  close(): void {
    this.#shutdown(new Error("QMP connection closed by the client"));
    this.#socket.destroy();
  }

  /** Start of the current one-second window and the unsolicited messages (events, noise) counted in it. */
  #window = { start: 0, count: 0 };

  /** Counts a message that answers no command; a peer sending more than MAX_UNSOLICITED_PER_SECOND is dropped. */
  #unsolicited(): boolean {
    const now = performance.now();
    if (now - this.#window.start >= 1000) this.#window = { start: now, count: 0 };
    if (++this.#window.count <= MAX_UNSOLICITED_PER_SECOND) return false;
    this.#shutdown(new QmpPeerError(`QMP peer floods: over ${MAX_UNSOLICITED_PER_SECOND} events or other unasked-for messages within 1 s (QEMU rate-limits the events a guest can cause)`));
    this.#socket.destroy();
    return true;
  }

  #handleLine(line: string): void {
    if (this.#closedError) return;
    const msg = _parse(line);
    if (!msg || typeof msg.event === "string" || !("return" in msg || "error" in msg)) {
      if (this.#unsolicited()) return;
    }
    if (!msg) return;
    if (typeof msg.event === "string") {
      const ev: QmpEvent = { event: msg.event, data: isRecord(msg.data) ? msg.data : {}, timestamp: msg.timestamp };
      for (const l of [...this.#listeners]) l(ev);
      return;
    }
    if (!("return" in msg) && !("error" in msg)) return;
    // QEMU echoes our id; a reply without one (a request it could not parse) answers the oldest
    // command, because without out-of-band execution QEMU answers in order. A reply whose id is no
    // longer pending (its command timed out) answers nothing.
    if ("id" in msg && !(typeof msg.id === "string" && this.#pending.has(msg.id))) return;
    const id = typeof msg.id === "string" ? msg.id : this.#pending.keys().next().value;
    if (id === undefined) return;
    const p = this.#pending.get(id)!;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if ("error" in msg) {
      const error = msg.error;
      const errorClass = isRecord(error) && typeof error.class === "string" ? error.class : "GenericError";
      const desc = isRecord(error) && typeof error.desc === "string" ? error.desc : _describeOddError(error);
      p.reject(new QmpError(p.command, errorClass, desc));
    } else {
      p.resolve(msg.return);
    }
  }

  #shutdown(err: Error): void {
    if (this.#closedError) return;
    this.#closedError = err;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
    for (const l of [...this.#listeners]) l({ event: closeEvent, data: {}, timestamp: null });
    this.#listeners.clear();
  }
}

/**
 * Events and other messages no command asked for, per second, before the peer is dropped. QEMU rate-limits the
 * events a guest can trigger to about one per second per source; even a VM with thousands of ports changing at
 * once stays well below this.
 */
export const MAX_UNSOLICITED_PER_SECOND = 10_000;

// Not a QMP event name (QMP names are upper case): used only inside this file.
const closeEvent = "vmchan:closed";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * An error reply without a string `desc`, in at most 200 characters. It is whatever the peer sent: nested a
 * million deep it would overflow JSON.stringify's stack, and it could be megabytes.
 */
function _describeOddError(error: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(error) ?? String(error);
  } catch {
    return "an error reply too deeply nested to show";
  }
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function _parse(line: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(line);
    return isRecord(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Longest QMP line accepted, in bytes. QEMU's biggest answers are query-chardev and qom-list, about 100 bytes
 * per chardev or device: 4 MiB is room for some 40,000 ports, far beyond a real VM, while a line that size
 * costs tens of MiB once parsed. A peer that sends more without a newline is not QEMU and is dropped.
 */
export const MAX_QMP_LINE = 4 * 1024 * 1024;

/** A QMP peer broke a bound (an endless line): the connection is dropped. */
export class QmpPeerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QmpPeerError";
  }
}

/**
 * Splits a byte stream into lines. Bytes are kept as received until a newline arrives (no string grows
 * chunk by chunk, so the cost stays linear); a line longer than `maxLine` throws QmpPeerError.
 */
export function _lineSplitter(maxLine = MAX_QMP_LINE): (chunk: Buffer) => string[] {
  let parts: Buffer[] = [];
  let held = 0;
  const decoder = new TextDecoder();
  const tooLong = () => new QmpPeerError(`QMP peer sent a line over ${maxLine} bytes without a newline (QEMU never does)`);
  return (chunk) => {
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      if (held + nl - start > maxLine) throw tooLong();
      parts.push(chunk.subarray(start, nl));
      const line = decoder.decode(parts.length === 1 ? parts[0] : Buffer.concat(parts)).replace(/\r$/, "");
      parts = [];
      held = 0;
      if (line.trim() !== "") out.push(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      held += chunk.length - start;
      if (held > maxLine) throw tooLong();
      // A copy: the rest must not pin the socket's whole read buffer.
      parts.push(Buffer.from(chunk.subarray(start)));
    }
    return out;
  };
}
