import * as fs from "node:fs";
import type { Socket, TCPSocketListener } from "bun";
import type { Address } from "./address.ts";
import { CHUNK_SIZE, type Sink, sleep } from "./endpoint.ts";
import { escapingSink } from "./escape.ts";
import { FdSink, FdSource } from "./fd-stream.ts";
import { errnoOf, VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { PortDevice, type PortOptions } from "./guest/port-device.ts";
import { resolveGuestPort } from "./guest/resolve.ts";
import { connectError, SocketChannel } from "./host/socket-channel.ts";
import { SocketStream } from "./net/socket-stream.ts";
import { childEnv } from "./runtime-env.ts";
import { checkUnixPath, listenError, listenUnix, type UnixListening } from "./net/unix-listen.ts";
import { beforeSpawn, CHILD_GRACE_MS, endAdopted, onExit, signalGroup, trackGroup } from "./exit-cleanup.ts";
import type { Connector, Session } from "./session.ts";

export interface ConnectorOptions extends PortOptions {
  /** Host writers to a VM socket: linger after the send queue is empty, ms. Default 1000. */
  lingerMs?: number;
  /** Diagnostics (a second client waiting, retries). */
  log?: (line: string) => void;
  /** stdio: escape control characters on the way to stdout (it is a terminal and --raw was not given). */
  escapeOutput?: boolean;
  /** Session boundaries as the connector sees them (a guest port's host connects and disconnects), for -v. */
  events?: (line: string) => void;
}

/** The connector for an address; `label` is the address as the user wrote it. */
export function connectorFor(addr: Address, label: string, options: ConnectorOptions = {}): Connector {
  switch (addr.kind) {
    case "port":
      return new PortConnector(addr.spec, label, addr.anyDevice ? { ...options, anyDevice: true } : options, options.log ?? (() => {}), options.events ?? (() => {}));
    case "unix":
      checkUnixPath(addr.path, label, "connect to");
      return activeConnector(label, () => SocketChannel.connect(addr.path, label, { lingerMs: options.lingerMs }));
    case "vm-port":
      return activeConnector(label, async () => {
        const { path, ...checks } = await discoveryResolver(addr.vm, addr.port);
        return SocketChannel.connect(path, label, { lingerMs: options.lingerMs, ...checks });
      });
    case "tcp":
      return activeConnector(label, () => tcpConnect(addr.host, addr.port, label));
    case "unix-listen":
    case "tcp-listen":
      return new ListenConnector(addr, label, options.log ?? (() => {}), options.events ?? (() => {}));
    case "exec":
      return { ...activeConnector(label, async () => spawnSession(addr.argv, label)), prepare: () => checkCommand(addr.argv) };
    case "stdio":
      return new StdioConnector(options.escapeOutput ?? false);
  }
}

/** Host discovery (QMP, libvirt, zod schemas) is loaded only when a VM:NAME address needs it. */
async function discoveryResolver(vm: string, port: string): Promise<import("./host/resolve-vm.ts").HostTarget> {
  return (await import("./host/resolve-vm.ts")).hostTargetResolver()(vm, port);
}

function socketSession(stream: SocketStream, endsSession = true): Session {
  return Object.assign(stream, { endsSession, interrupt: () => stream.interruptRead() });
}

function activeConnector(label: string, connect: () => Promise<SocketStream | Session>): Connector {
  return {
    label,
    passive: false,
    open: async () => {
      const s = await connect();
      return s instanceof SocketStream ? socketSession(s) : s;
    },
    close: () => {},
  };
}

async function tcpConnect(host: string, port: number, label: string): Promise<SocketStream> {
  const stream = new SocketStream(label, { finish: "half-close" });
  try {
    return stream.attach(await Bun.connect({ hostname: host, port, data: stream, allowHalfOpen: true, socket: SocketStream.handlers }));
  } catch (err) {
    throw connectError(err, `${host}:${port}`, label);
  }
}

/**
 * A guest port: one session per host connection; the device stays open between them. The guest
 * cannot hang up on the host, so when the other side ends a session first, what the same host
 * still sends is read and discarded (and counted on stderr) until it disconnects: a new session
 * starts with a new host connection, never with the tail of the last one.
 */
class PortConnector implements Connector {
  readonly passive = true;
  private dev: PortDevice | null = null;
  private hostStillThere = false;
  constructor(
    private readonly spec: string,
    readonly label: string,
    private readonly options: PortOptions,
    private readonly log: (line: string) => void,
    private readonly events: (line: string) => void,
  ) {}

  prepare(): void {
    if (this.dev) return;
    // file:PATH is taken as written; anything else is looked up as a guest port.
    const ref = this.options.anyDevice ? { path: this.spec, label: this.label } : resolveGuestPort(this.spec, this.options.root ?? "/");
    this.dev = PortDevice.open(ref.path, ref.label, this.options);
  }

  async open(): Promise<Session> {
    this.prepare();
    const dev = this.dev!;
    if (this.hostStillThere) {
      let discarded = 0;
      for (let chunk = await dev.read(); chunk; chunk = await dev.read()) discarded += chunk.byteLength;
      if (discarded > 0) this.log(`vmchan: ${this.label}: discarded ${discarded} bytes the host sent after its session ended`);
      this.hostStillThere = false;
      this.events(`vmchan: ${this.label}: host disconnected`);
    }
    await dev.waitForHost();
    this.hostStillThere = true;
    this.events(`vmchan: ${this.label}: host connected`);
    let interrupted = false;
    return {
      label: this.label,
      endsSession: true,
      read: async () => {
        const chunk = await dev.read();
        if (chunk === null && !interrupted && this.hostStillThere) {
          this.hostStillThere = false;
          this.events(`vmchan: ${this.label}: host disconnected`);
        }
        return chunk;
      },
      write: (chunk) => dev.write(chunk),
      interrupt: () => {
        interrupted = true;
        dev.interrupt();
      },
      close: () => {}, // the port stays open for the next host session
    };
  }

  close(): void {
    this.dev?.close();
  }
}

/**
 * Standard input and output, shared by every session. Stdin's EOF ends one direction only. A read
 * cut short by the end of a session stays pending and feeds the next session, so no input is lost.
 */
class StdioConnector implements Connector {
  readonly label = "stdio";
  readonly passive = true;
  private readonly input = new FdSource(0, "standard input");
  private readonly output: Sink;
  private pending: Promise<Uint8Array | null> | null = null;
  private inputDone = false;

  constructor(escapeOutput: boolean) {
    const out = new FdSink(1, "standard output");
    this.output = escapeOutput ? escapingSink(out) : out;
  }

  async open(): Promise<Session> {
    let stop: (() => void) | null = null;
    const stopped = new Promise<"stopped">((resolve) => (stop = () => resolve("stopped")));
    return {
      label: this.label,
      endsSession: false,
      read: async () => {
        if (this.inputDone) return null;
        this.pending ??= this.input.read();
        const r = await Promise.race([this.pending, stopped]);
        if (r === "stopped") return null;
        this.pending = null;
        if (r === null) this.inputDone = true;
        return r;
      },
      write: (chunk) => this.output.write(chunk),
      interrupt: () => stop?.(),
      close: () => stop?.(),
    };
  }

  close(): void {}
}

/**
 * Clients that may wait while a session runs; more are accepted and closed at once, so a flood of
 * connections cannot use up descriptors or memory (a waiting client holds one descriptor and at
 * most WAITING_BUFFER bytes of what it sent).
 */
export const MAX_WAITING_CLIENTS = 16;
/** What a waiting client may send before it is no longer read: enough to see its EOF or reset, bounded. */
export const WAITING_BUFFER = 64 * 1024;

/**
 * A listening socket: one session per accepted client, one at a time; up to MAX_WAITING_CLIENTS
 * later ones wait (and are told so), the rest are closed when accepted.
 */
class ListenConnector implements Connector {
  readonly passive = true;
  private listener: UnixListening<SocketStream> | TCPSocketListener<SocketStream> | null = null;
  private readonly waiting: Array<{ stream: SocketStream; socket: Socket<SocketStream> }> = [];
  private wake: (() => void) | null = null;
  private active = false;
  private refused = 0;
  private unregister: (() => void) | null = null;

  constructor(
    private readonly addr: Extract<Address, { kind: "unix-listen" | "tcp-listen" }>,
    readonly label: string,
    private readonly log: (line: string) => void,
    private readonly events: (line: string) => void,
  ) {}

  prepare(): Promise<void> {
    return this.listen();
  }

  private accept(socket: Socket<SocketStream>): void {
    const stream = new SocketStream(`${this.label} client`, this.addr.kind === "unix-listen" ? { finish: "linger" } : { finish: "half-close" });
    socket.data = stream;
    // Clients that left while waiting do not count.
    this.dropAbandoned();
    if (this.waiting.length >= MAX_WAITING_CLIENTS) {
      if (this.refused++ === 0)
        this.events(`vmchan: ${this.label}: ${MAX_WAITING_CLIENTS} clients already waiting; closing new connections until one is served`);
      socket.terminate();
      return;
    }
    // Read while it waits, into a small bounded buffer, so that a client that leaves (EOF, reset)
    // before sending anything is seen and dropped: it holds no slot and never becomes a session.
    stream.waitUnattached(socket, WAITING_BUFFER, () => this.dropAbandoned());
    this.waiting.push({ stream, socket });
    if (this.active) this.log(`vmchan: another client is waiting on ${this.label}; it is served when the current one ends`);
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Drops (and closes) the waiting clients that left before sending anything. */
  private dropAbandoned(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const w = this.waiting[i]!;
      if (!w.stream.abandoned) continue;
      this.waiting.splice(i, 1);
      w.socket.terminate();
    }
  }

  /** Starts listening (at the first open, or earlier to fail fast). */
  async listen(): Promise<void> {
    if (this.listener) return;
    const handlers = { ...SocketStream.handlers, open: (socket: Socket<SocketStream>) => this.accept(socket) };
    if (this.addr.kind === "unix-listen") {
      this.listener = await listenUnix<SocketStream>(this.addr.path, this.label, handlers);
      // Removed however the process ends (SIGTERM, SIGINT, SIGHUP, an error).
      this.unregister = onExit(() => this.close());
    } else {
      try {
        this.listener = Bun.listen<SocketStream>({ hostname: this.addr.host, port: this.addr.port, allowHalfOpen: true, socket: handlers });
      } catch (err) {
        throw listenError(err, `${this.addr.host}:${this.addr.port}`, this.label);
      }
    }
  }

  async open(): Promise<Session> {
    await this.listen();
    this.active = false;
    for (;;) {
      const entry = this.waiting.shift();
      if (entry) {
        const next = entry.stream;
        if (next.abandoned) {
          entry.socket.terminate();
          continue;
        }
        next.attach(entry.socket);
        if (this.refused > 0) this.events(`vmchan: ${this.label}: closed ${this.refused} connection(s) that found the waiting queue full`);
        this.refused = 0;
        this.active = true;
        const session = socketSession(next);
        const close = session.close.bind(session);
        session.close = () => {
          this.active = false;
          return close();
        };
        return session;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  close(): void {
    const l = this.listener;
    this.listener = null;
    this.unregister?.();
    this.unregister = null;
    for (const w of this.waiting.splice(0)) w.socket.terminate();
    if (!l) return;
    if ("close" in l) l.close();
    else l.stop(true);
  }
}

/**
 * Checks before the first session that `argv[0]` can be run: a missing or non-executable command
 * is an error at once (not a retry loop while clients come and go).
 */
export function checkCommand(argv: string[]): void {
  const name = argv[0] ?? "";
  const path = name.includes("/") ? name : Bun.which(name);
  if (!path)
    throw new VmchanError(`cannot run "${name}": command not found`, { code: ExitCode.notFound, hint: "give its full path, or check PATH" });
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (err) {
    throw spawnError(err, name);
  }
  if (st.isDirectory()) throw new VmchanError(`cannot run "${name}": ${path} is a directory`, { code: ExitCode.permission, hint: "name a program" });
  try {
    fs.accessSync(path, fs.constants.X_OK);
  } catch (err) {
    throw spawnError(err, name);
  }
}

function spawnError(err: unknown, name: string): VmchanError {
  switch (errnoOf(err)) {
    case "ENOENT":
    case "ENOTDIR":
      return new VmchanError(`cannot run "${name}": command not found`, { code: ExitCode.notFound, hint: "give its full path, or check PATH" });
    case "EACCES":
    case "EPERM":
      return new VmchanError(`cannot run "${name}": permission denied (not executable by this user)`, {
        code: ExitCode.permission,
        hint: "check its mode (chmod +x) and the directories above it",
      });
    case "ENOEXEC":
      return new VmchanError(`cannot run "${name}": not a program this system can run`, { code: ExitCode.permission, hint: "a script needs a #! line" });
    default:
      return new VmchanError(`cannot run "${name}": ${(err as Error).message ?? String(err)}`, { cause: err });
  }
}

/** After its stdin is closed, how long a command may take to exit before its process group gets SIGTERM (then SIGKILL). */
const EXIT_GRACE_MS = 2000;

/**
 * Runs a command with its stdin and stdout as the session (`exec:` and `listen --exec`). It runs in
 * its own session and process group (setsid), which is ended when the session closes and on every
 * way vmchan exits (see exit-cleanup.ts); vmchan is a child subreaper, so what the command moved
 * out of its group (setsid, double fork) is adopted and ended too: nothing it started outlives the bridge.
 */
export function spawnSession(argv: string[], label: string): Session {
  let proc: ReturnType<typeof Bun.spawn<"pipe", "pipe", "inherit">>;
  beforeSpawn();
  try {
    proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "inherit", env: childEnv(), detached: true });
  } catch (err) {
    throw spawnError(err, argv[0] ?? "");
  }
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const untrack = trackGroup(proc.pid, running);
  const reader = proc.stdout.getReader();
  let interrupted: (() => void) | null = null;
  let stdinOpen = true;
  const exitedWithin = (ms: number) => Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
  return {
    label,
    endsSession: true,
    async read() {
      const stop = new Promise<null>((resolve) => (interrupted = () => resolve(null)));
      const r = await Promise.race([reader.read(), stop]);
      if (r === null || r.done) return null;
      return r.value;
    },
    async write(chunk) {
      if (!stdinOpen) return;
      try {
        // Bun's FileSink buffers: flush each chunk so at most one chunk is held.
        for (let off = 0; off < chunk.byteLength; off += CHUNK_SIZE) {
          proc.stdin.write(chunk.subarray(off, off + CHUNK_SIZE));
          await proc.stdin.flush();
        }
      } catch {
        stdinOpen = false; // the command stopped reading; what it printed still flows the other way
      }
    },
    async finish() {
      if (!stdinOpen) return;
      stdinOpen = false;
      try {
        await proc.stdin.end();
      } catch {
        // already exited
      }
    },
    interrupt: () => interrupted?.(),
    async close() {
      if (stdinOpen) {
        stdinOpen = false;
        try {
          await proc.stdin.end();
        } catch {
          // already exited
        }
      }
      if (running() && !(await exitedWithin(EXIT_GRACE_MS))) {
        signalGroup(proc.pid, "SIGTERM");
        if (!(await exitedWithin(CHILD_GRACE_MS))) signalGroup(proc.pid, "SIGKILL");
        await exitedWithin(CHILD_GRACE_MS);
      }
      // What the command left running in its group (a background job) ends with the session.
      signalGroup(proc.pid, "SIGKILL");
      untrack();
      // And what it left outside its group (setsid): adopted by us, ended once no command runs.
      await endAdopted();
    },
  };
}
