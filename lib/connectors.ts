import * as fs from "node:fs";
import type { Socket, TCPSocketListener, UnixSocketListener } from "bun";
import type { Address } from "./address.ts";
import { CHUNK_SIZE, type Sink } from "./endpoint.ts";
import { escapingSink } from "./escape.ts";
import { FdSink, FdSource } from "./fd-stream.ts";
import { errnoOf, VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { PortDevice, type PortOptions } from "./guest/port-device.ts";
import { resolveGuestPort } from "./guest/resolve.ts";
import { connectError, SocketChannel } from "./host/socket-channel.ts";
import { SocketStream } from "./net/socket-stream.ts";
import { childEnv } from "./runtime-env.ts";
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
      return new ListenConnector(addr, label, options.log ?? (() => {}));
    case "exec":
      return activeConnector(label, async () => spawnSession(addr.argv, label));
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

/** A listening socket: one session per accepted client, one at a time; later ones wait, and are told so. */
class ListenConnector implements Connector {
  readonly passive = true;
  private listener: UnixSocketListener<SocketStream> | TCPSocketListener<SocketStream> | null = null;
  private readonly waiting: SocketStream[] = [];
  private wake: (() => void) | null = null;
  private active = false;

  constructor(
    private readonly addr: Extract<Address, { kind: "unix-listen" | "tcp-listen" }>,
    readonly label: string,
    private readonly log: (line: string) => void,
  ) {}

  prepare(): Promise<void> {
    return this.listen();
  }

  /** Starts listening (at the first open, or earlier to fail fast). */
  async listen(): Promise<void> {
    if (this.listener) return;
    const handlers = {
      ...SocketStream.handlers,
      open: (socket: Socket<SocketStream>) => {
        const stream = new SocketStream(`${this.label} client`, this.addr.kind === "unix-listen" ? { finish: "linger" } : { finish: "half-close" });
        socket.data = stream.attach(socket);
        this.waiting.push(stream);
        if (this.active) this.log(`vmchan: another client is waiting on ${this.label}; it is served when the current one ends`);
        const w = this.wake;
        this.wake = null;
        w?.();
      },
    };
    if (this.addr.kind === "unix-listen") {
      const path = this.addr.path;
      await removeStaleSocket(path, this.label);
      const mask = process.umask(0o177); // the socket is created 0600: only its owner may connect
      try {
        this.listener = Bun.listen<SocketStream>({ unix: path, allowHalfOpen: true, socket: handlers });
      } catch (err) {
        throw listenError(err, path, this.label);
      } finally {
        process.umask(mask);
      }
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
      const next = this.waiting.shift();
      if (next) {
        if (next.abandoned) continue;
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
    this.listener?.stop(true);
    if (this.addr.kind === "unix-listen") fs.rmSync(this.addr.path, { force: true });
  }
}

/** A socket file left by a dead process is replaced; one something still listens on is not. */
async function removeStaleSocket(path: string, label: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw new VmchanError(`cannot listen on "${label}": ${path} exists and is not a socket`, { code: ExitCode.usage, hint: "choose another path" });
  const alive = await Bun.connect({ unix: path, socket: { data() {} } }).then(
    (s) => (s.terminate(), true),
    () => false,
  );
  if (alive)
    throw new VmchanError(`cannot listen on "${label}": another process listens on ${path}`, {
      code: ExitCode.busy,
      hint: "stop it, or choose another path",
    });
  fs.rmSync(path, { force: true });
}

function listenError(err: unknown, where: string, label: string): VmchanError {
  const code = errnoOf(err);
  if (code === "EADDRINUSE") return new VmchanError(`cannot listen on "${label}": ${where} is in use`, { code: ExitCode.busy });
  if (code === "EACCES" || code === "EPERM") return new VmchanError(`cannot listen on "${label}": permission denied`, { code: ExitCode.permission });
  return new VmchanError(`cannot listen on "${label}": ${(err as Error).message}`, { cause: err });
}

/** Runs a command with its stdin and stdout as the session (`exec:` and `listen --exec`). */
export function spawnSession(argv: string[], label: string): Session {
  let proc: ReturnType<typeof Bun.spawn<"pipe", "pipe", "inherit">>;
  try {
    proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "inherit", env: childEnv() });
  } catch (err) {
    throw new VmchanError(`cannot run "${argv[0]}": ${errnoOf(err) === "ENOENT" ? "command not found" : (err as Error).message}`, {
      code: ExitCode.notFound,
    });
  }
  const reader = proc.stdout.getReader();
  let interrupted: (() => void) | null = null;
  let stdinOpen = true;
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
      const exited = await Promise.race([proc.exited, Bun.sleep(2000).then(() => null)]);
      if (exited === null) proc.kill("SIGTERM");
    },
  };
}
