import type { Context } from "../context.ts";
import type { Endpoint } from "../endpoint.ts";
import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { FdSink, FdSource } from "../fd-stream.ts";
import { connectError, SocketChannel } from "../host/socket-channel.ts";
import { SocketStream } from "../net/socket-stream.ts";
import { enterRawMode, isTerminal } from "../sys/termios.ts";
import { describeKey, EscapeFilter, parseEscapeKey } from "./escape-key.ts";
import { type ConsoleTarget, resolveConsoleTarget, type TargetOptions } from "./target.ts";

export interface ConsoleOptions extends TargetOptions {
  /** `--escape`: `^X`, one character, or `none`. Default `^]`. */
  escape?: string;
  /** After the last keystroke, how long to stay connected before closing, so QEMU hands it to the guest, ms. Default 500. */
  lingerMs?: number;
  /** The terminal: input and output descriptors. Default 0 and 1. */
  inFd?: number;
  outFd?: number;
}

/** How a console session ended. */
type Ending = { kind: "quit" } | { kind: "input-closed" } | { kind: "peer-closed" } | { kind: "signal"; signal: string } | { kind: "error"; error: unknown };

const SIGNALS = ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"] as const;

/**
 * `vmchan console TARGET`: the local terminal, in raw mode, wired to a VM's console or serial port
 * socket until the escape key and `q` (exit 0), the VM closing it (ExitCode.peerGone), or a signal
 * (ExitCode.interrupted). The terminal's settings are restored exactly in every case a process can
 * see. The socket is never half-closed (QEMU takes that as a disconnect).
 */
export async function consoleCommand(ctx: Context, text: string, options: ConsoleOptions = {}): Promise<number> {
  const key = parseEscapeKey(options.escape ?? "^]");
  const inFd = options.inFd ?? 0;
  const outFd = options.outFd ?? 1;
  if (!isTerminal(inFd))
    throw new VmchanError(`cannot open a console on "${text}": standard input is not a terminal`, {
      code: ExitCode.usage,
      hint: `for pipes and scripts use 'vmchan bridge - ${text}'`,
    });
  const target = await resolveConsoleTarget(text, options);
  const channel = await connectConsole(target, options.lingerMs ?? 500);

  const quitHow = key === null ? "no escape key: stop it with SIGTERM" : `quit: ${describeKey(key)} q`;
  const shown = target.kind === "tcp" || target.label === `unix:${target.path}` ? target.label : `${target.label} (${target.path})`;
  ctx.err(`vmchan: connected to ${shown}; ${quitHow}; press Enter if no prompt shows\n`);

  let finish!: (ending: Ending) => void;
  const ended = new Promise<Ending>((resolve) => (finish = resolve));
  const onSignal = (signal: NodeJS.Signals) => finish({ kind: "signal", signal });
  let restore: () => void = () => {};
  try {
    restore = enterRawMode(inFd);
  } catch (err) {
    await Promise.resolve(channel.close()).catch(() => {});
    throw new VmchanError(`cannot put the terminal in raw mode: ${(err as Error).message}`, { cause: err });
  }
  // Last resort: whatever way the process leaves, the terminal is restored first.
  process.on("exit", restore);
  for (const s of SIGNALS) process.on(s, onSignal);
  const out = new FdSink(outFd, "the terminal");
  try {
    void guestToTerminal(channel, out, finish);
    void keyboardToGuest(new FdSource(inFd, "the terminal"), new EscapeFilter(key), channel, out, key, finish);
    const ending = await ended;
    restore();
    return report(ctx, ending, target);
  } finally {
    restore();
    for (const s of SIGNALS) process.off(s, onSignal);
    process.off("exit", restore);
    await Promise.resolve(channel.close()).catch(() => {});
  }
}

/** Connects to a console target; a VM's socket passes the same checks as VM:NAME (who made it, held). */
export async function connectConsole(target: ConsoleTarget, lingerMs: number): Promise<Endpoint> {
  if (target.kind === "unix") return SocketChannel.connect(target.path, target.label, { lingerMs, ...target.checks });
  const stream = new SocketStream(target.label, { finish: "linger", lingerMs });
  try {
    return stream.attach(await Bun.connect({ hostname: target.host, port: target.port, data: stream, allowHalfOpen: true, socket: SocketStream.handlers }));
  } catch (err) {
    throw connectError(err, `${target.host}:${target.port}`, target.label);
  }
}

/** Guest output to the terminal as it is: it is a terminal session. */
async function guestToTerminal(channel: Endpoint, out: FdSink, finish: (e: Ending) => void): Promise<void> {
  try {
    for (let chunk = await channel.read(); chunk !== null; chunk = await channel.read()) await out.write(chunk);
    finish({ kind: "peer-closed" });
  } catch (error) {
    finish({ kind: "error", error });
  }
}

/** Keystrokes to the guest, through the escape-key filter. */
async function keyboardToGuest(
  input: FdSource,
  filter: EscapeFilter,
  channel: Endpoint,
  out: FdSink,
  key: number | null,
  finish: (e: Ending) => void,
): Promise<void> {
  const help = key === null ? "" : `\r\nvmchan: ${describeKey(key)} then: q quit, ${describeKey(key)} send ${describeKey(key)}, ? this help\r\n`;
  try {
    for (;;) {
      const chunk = await input.read();
      if (chunk === null) return finish({ kind: "input-closed" });
      for (const ev of filter.push(chunk)) {
        if (ev.kind === "quit") return finish({ kind: "quit" });
        if (ev.kind === "help") await out.write(new TextEncoder().encode(help));
        else await channel.write(ev.bytes);
      }
    }
  } catch (error) {
    finish({ kind: "error", error });
  }
}

/** The exit code for an ending, with a line on stderr where the user should know why. */
function report(ctx: Context, ending: Ending, target: ConsoleTarget): number {
  switch (ending.kind) {
    case "quit":
    case "input-closed":
      ctx.err("\n");
      return ExitCode.ok;
    case "signal":
      if (ending.signal !== "SIGHUP") ctx.err(`\nvmchan: console on ${target.label} stopped by ${ending.signal}\n`);
      return ExitCode.interrupted;
    case "peer-closed":
      ctx.err("\n");
      throw new VmchanError(`console on ${target.label} closed: QEMU ended the connection`, {
        code: ExitCode.peerGone,
        hint: "the VM has stopped, or its chardev was removed",
      });
    case "error":
      throw ending.error;
  }
}
