/**
 * The host side of the guest command agent (protocol in guest/agent.sh): one line per message each way,
 * payloads in base64 so any bytes survive.
 */
import type * as net from "node:net";

/** What a guest command produced. */
export interface RunResult {
  /** Exit status; 128+N when killed by signal N. */
  code: number;
  stdout: string;
  stderr: string;
}

/** A command running in the background in the guest, in its own session and process group. */
export interface GuestJob {
  /** The job's guest pid, also its process group and session id. */
  readonly pid: number;
  /** Resolves when the job ends; rejects after `timeoutMs` (default 60000) without stopping the job. */
  wait(opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Sends `signal` (default TERM) to the job's whole process group. */
  kill(signal?: string): Promise<void>;
}

interface JobState {
  script: string;
  started: { resolve: (pid: number) => void; reject: (err: Error) => void };
  result: RunResult | null;
  failure: Error | null;
  waiters: Array<{ resolve: (r: RunResult) => void; reject: (err: Error) => void }>;
}

const defaultTimeoutMs = 60_000;

/** The first line of a script, shortened, to name it in errors. */
function summary(script: string): string {
  const line = script.trim().split("\n")[0] ?? "";
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 77)}...` : line);
}

/** Talks to the agent over a connected control socket. */
export class AgentClient {
  readonly #socket: net.Socket;
  readonly #jobs = new Map<number, JobState>();
  /** Extra context for errors, e.g. the tail of the guest console. */
  readonly #describe: () => string;
  #nextId = 1;
  #rest = "";
  #hello: { resolve: (pid: number) => void; reject: (err: Error) => void } | null = null;
  #helloPid: number | null = null;
  #closed: Error | null = null;

  constructor(socket: net.Socket, describe: () => string = () => "") {
    this.#socket = socket;
    this.#describe = describe;
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => this.#onData(chunk));
    socket.on("error", (err) => this.#fail(new Error(`guest agent connection failed: ${err.message}`)));
    socket.on("close", () => this.#fail(new Error("guest agent connection closed")));
  }

  /** Resolves with the agent's pid once it has said hello; rejects after `timeoutMs`. */
  ready(timeoutMs: number): Promise<number> {
    if (this.#helloPid !== null) return Promise.resolve(this.#helloPid);
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the guest agent did not start within ${timeoutMs} ms`)), timeoutMs);
      this.#hello = {
        resolve: (pid) => (clearTimeout(timer), resolve(pid)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
    });
  }

  /** Starts `script` (run by sh, stdin /dev/null) in the background; resolves once the guest reports its pid. */
  spawn(script: string, opts: { timeoutMs?: number } = {}): Promise<GuestJob> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    // The state is held here, not looked up again when the pid arrives: a short job's "done" can come in the
    // same read as its "pid", and #onLine forgets the job at "done", before the promise below resolves.
    let state!: JobState;
    const pid = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.#error(`guest command did not start within ${timeoutMs} ms: ${summary(script)}`)), timeoutMs);
      state = {
        script,
        started: { resolve: (p) => (clearTimeout(timer), resolve(p)), reject: (e) => (clearTimeout(timer), reject(e)) },
        result: null,
        failure: null,
        waiters: [],
      };
      this.#jobs.set(id, state);
    });
    this.#socket.write(`${id} ${Buffer.from(script).toString("base64")}\n`);
    return pid.then((p) => this.#job(state, p));
  }

  /** Runs `script` and resolves with its exit code and output; on timeout kills it and rejects. */
  async run(script: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
    const started = Date.now();
    const job = await this.spawn(script, { timeoutMs });
    try {
      return await job.wait({ timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)) });
    } catch (err) {
      await job.kill("KILL").catch(() => {});
      throw err;
    }
  }

  /** Stops talking to the agent; pending calls reject. */
  close(): void {
    this.#fail(new Error("guest agent connection closed by the lab"));
    this.#socket.destroy();
  }

  #job(state: JobState, pid: number): GuestJob {
    return {
      pid,
      wait: (opts = {}) => {
        if (state.result) return Promise.resolve(state.result);
        if (state.failure) return Promise.reject(state.failure);
        const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
        return new Promise<RunResult>((resolve, reject) => {
          const waiter = {
            resolve: (r: RunResult) => (clearTimeout(timer), resolve(r)),
            reject: (e: Error) => (clearTimeout(timer), reject(e)),
          };
          const timer = setTimeout(() => {
            state.waiters = state.waiters.filter((w) => w !== waiter);
            // A job left running after its test failed would hold its port and fail the next test too.
            if (!this.#closed) this.run(`kill -s KILL -- -${pid} 2>/dev/null; true`, { timeoutMs: 30_000 }).catch(() => {});
            reject(this.#error(`guest command timed out after ${timeoutMs} ms (its process group is killed): ${summary(state.script)}`));
          }, timeoutMs);
          state.waiters.push(waiter);
        });
      },
      kill: async (signal = "TERM") => {
        if (!/^[A-Z0-9]+$/.test(signal)) throw new Error(`bad signal name "${signal}"`);
        if (state.result) return;
        // A job that ended meanwhile has no group left: kill fails, which is fine.
        await this.run(`kill -s ${signal} -- -${pid} 2>/dev/null; true`, { timeoutMs: 30_000 });
      },
    };
  }

  #onData(chunk: string): void {
    const lines = (this.#rest + chunk).split("\n");
    this.#rest = lines.pop() ?? "";
    for (const line of lines) this.#onLine(line);
  }

  #onLine(line: string): void {
    const parts = line.split(" ");
    if (parts[0] === "hello") {
      this.#helloPid = Number(parts[1]);
      this.#hello?.resolve(this.#helloPid);
      this.#hello = null;
      return;
    }
    const job = this.#jobs.get(Number(parts[0]));
    if (!job) return;
    const decode = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString("utf8");
    switch (parts[1]) {
      case "pid":
        job.started.resolve(Number(parts[2]));
        break;
      case "done": {
        job.result = { code: Number(parts[2]), stdout: decode(parts[3]), stderr: decode(parts[4]) };
        for (const w of job.waiters.splice(0)) w.resolve(job.result);
        this.#jobs.delete(Number(parts[0]));
        // Later wait() calls find the result in the state that spawn() handed to #job.
        break;
      }
      case "error": {
        const err = this.#error(`the guest agent could not run ${summary(job.script)}: ${decode(parts[2]).trim()}`);
        job.failure = err;
        job.started.reject(err);
        this.#jobs.delete(Number(parts[0]));
        break;
      }
    }
  }

  #error(message: string): Error {
    const extra = this.#describe();
    return new Error(extra ? `${message}\n${extra}` : message);
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = this.#error(err.message);
    this.#hello?.reject(this.#closed);
    for (const job of this.#jobs.values()) {
      job.failure = this.#closed;
      job.started.reject(this.#closed);
      for (const w of job.waiters.splice(0)) w.reject(this.#closed);
    }
    this.#jobs.clear();
  }
}
