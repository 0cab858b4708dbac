import { parseAddress } from "./address.ts";
import { connectorFor } from "./connectors.ts";
import type { Context } from "./context.ts";
import { exitOnSignals } from "./exit-cleanup.ts";
import { sleep } from "./endpoint.ts";
import { UsageError, VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { OutputFailed } from "./fd-stream.ts";
import { pump } from "./relay.ts";
import type { Connector, Session } from "./session.ts";

export interface BridgeOptions {
  /** Exit after the first session (or the first failure) instead of reconnecting. Default false. */
  once?: boolean;
  /** After one side has ended the session, how long the other direction may still deliver, ms. Default 500. */
  graceMs?: number;
  /** Reconnect back-off bounds, ms. Defaults 100 and 5000. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Stop after this many sessions (listen without -k: 1). Default: no limit unless once. */
  maxSessions?: number;
  /** Diagnostics on stderr. */
  log?: (line: string) => void;
  /** Called with each session's byte counts when it ends. */
  onSession?: (stats: SessionStats) => void;
}

export interface SessionStats {
  number: number;
  /** Bytes A→B and B→A. */
  forward: number;
  backward: number;
  /** The error that ended the session, if any. */
  error: VmchanError | null;
}

/** Errors after which reconnecting cannot help. */
const FATAL = new Set<number>([ExitCode.unplugged, ExitCode.permission, ExitCode.usage, ExitCode.brokenPipe]);
/** Standard output that cannot be written stays so: every later session's bytes would be lost. */
const fatal = (err: VmchanError) => FATAL.has(err.code) || err instanceof OutputFailed;

/**
 * `bridge A B`: relays both ways, session after session. Passive sides (port, listener) are
 * waited for first; active sides (connect, exec) are opened for each session, with back-off.
 * Returns the exit code of the last session.
 */
export async function bridge(a: Connector, b: Connector, options: BridgeOptions = {}): Promise<number> {
  const log = options.log ?? (() => {});
  const minBackoff = options.minBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const maxSessions = options.once ? 1 : (options.maxSessions ?? Number.POSITIVE_INFINITY);
  let sessions = 0;
  let backoff = minBackoff;
  let lastError = "";
  try {
    // A busy, missing or forbidden port or listening address is an error now, not a retry loop.
    await a.prepare?.();
    await b.prepare?.();
    for (;;) {
      let sa: Session | null = null;
      let sb: Session | null = null;
      try {
        // Wait for the passive side first, so an active side is not connected before it is needed.
        if (!a.passive && b.passive) {
          sb = await b.open();
          sa = await a.open();
        } else {
          sa = await a.open();
          sb = await b.open();
        }
      } catch (err) {
        await sa?.close();
        await sb?.close();
        if (!(err instanceof VmchanError) || options.once || fatal(err)) throw err;
        if (err.message !== lastError) log(`vmchan: ${err.message}; retrying every ${(maxBackoff / 1000).toFixed(0)} s at most`);
        lastError = err.message;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, maxBackoff);
        continue;
      }
      backoff = minBackoff;
      lastError = "";
      sessions++;
      const stats = await runSession(sa, sb, options.graceMs ?? 500);
      stats.number = sessions;
      options.onSession?.(stats);
      if (stats.error && (fatal(stats.error) || sessions >= maxSessions)) throw stats.error;
      if (sessions >= maxSessions) return ExitCode.ok;
      if (stats.error) log(`vmchan: session ${sessions} ended: ${stats.error.message}`);
    }
  } finally {
    await a.close();
    await b.close();
  }
}

/**
 * One session: both directions until one side ends it; the other direction then runs on while it
 * still moves data, and is cut only after `graceMs` without progress (socat's -t, but idle-based,
 * so a reply still streaming back is not truncated).
 */
export async function runSession(a: Session, b: Session, graceMs: number): Promise<SessionStats> {
  const stats: SessionStats = { number: 0, forward: 0, backward: 0, error: null };
  let ending = false;
  let lastProgress = performance.now();
  let endSession!: () => void;
  const ended = new Promise<void>((resolve) => (endSession = resolve));

  const direction = async (src: Session, dst: Session, key: "forward" | "backward") => {
    try {
      await pump(src, dst, {
        onProgress: (n) => {
          stats[key] = n;
          lastProgress = performance.now();
        },
        shouldStop: () => ending,
      });
      if (src.endsSession) endSession();
    } catch (err) {
      if (!ending) {
        if (err instanceof VmchanError) stats.error ??= err;
        else throw err;
      }
      endSession();
    }
  };
  let settled = false;
  const both = Promise.all([direction(a, b, "forward"), direction(b, a, "backward")]).finally(() => (settled = true));
  await Promise.race([ended, both]);
  lastProgress = performance.now();
  while (!settled) {
    const idle = performance.now() - lastProgress;
    if (idle >= graceMs) break;
    await Promise.race([both, sleep(graceMs - idle)]);
  }
  ending = true;
  a.interrupt();
  b.interrupt();
  await Promise.race([both, sleep(2000)]);
  await Promise.allSettled([a.close(), b.close()]);
  return stats;
}

export interface BridgeCommandOptions {
  once?: boolean;
  lingerMs?: number;
  verbose?: boolean;
  /** Write control characters to a terminal stdout as they are. */
  raw?: boolean;
}

/** `vmchan bridge A B`: parse both addresses, then relay session after session. */
export async function bridgeCommand(ctx: Context, textA: string, textB: string, options: BridgeCommandOptions = {}): Promise<number> {
  const a = parseAddress(textA);
  const b = parseAddress(textB);
  if (a.kind === "stdio" && b.kind === "stdio") throw new UsageError("bridge needs at least one side that is not stdio");
  const log = (line: string) => ctx.err(line + "\n");
  const connectorOptions = {
    lingerMs: options.lingerMs,
    log,
    root: ctx.root,
    escapeOutput: ctx.isTTY && !options.raw,
    events: options.verbose ? log : undefined,
  };
  const ca = connectorFor(a, textA, connectorOptions);
  const cb = connectorFor(b, textB, connectorOptions);
  const restore = exitOnSignals(log);
  try {
    return await bridge(ca, cb, {
      once: options.once,
      log,
      onSession: options.verbose
        ? (s) => log(`vmchan: session ${s.number}: ${s.forward} bytes ${textA} -> ${textB}, ${s.backward} bytes back${s.error ? ` (${s.error.message})` : ""}`)
        : undefined,
    });
  } finally {
    restore();
  }
}
