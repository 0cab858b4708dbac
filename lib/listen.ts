import { parseAddress, splitArgv } from "./address.ts";
import { bridge } from "./bridge.ts";
import { connectorFor } from "./connectors.ts";
import type { Context } from "./context.ts";
import { exitOnSignals } from "./exit-cleanup.ts";
import { UsageError } from "./errors.ts";

export interface ListenOptions {
  /** Keep serving session after session (default: one session, then exit). */
  keep?: boolean;
  /** Run this command for each session, wired to it (like nc -e); default stdin/stdout. */
  exec?: string;
  lingerMs?: number;
  verbose?: boolean;
  /** Write control characters to a terminal stdout as they are. */
  raw?: boolean;
}

/**
 * `vmchan listen ADDRESS`: in the guest, hold a port and serve each host session; on the host,
 * `unix:PATH` listens where a client-mode chardev (QEMU `reconnect=`) connects.
 */
export async function listen(ctx: Context, text: string, options: ListenOptions = {}): Promise<number> {
  const parsed = parseAddress(text);
  const addr =
    parsed.kind === "unix" ? ({ kind: "unix-listen", path: parsed.path } as const) : parsed;
  if (addr.kind !== "port" && addr.kind !== "unix-listen" && addr.kind !== "tcp-listen")
    throw new UsageError(`listen takes a guest port or unix:PATH, not a ${addr.kind} address ("${text}")`, "see 'vmchan listen --help'");
  const log = (line: string) => ctx.err(line + "\n");
  const events = options.verbose ? log : undefined;
  const server = connectorFor(addr, text, { root: ctx.root, log, events, lingerMs: options.lingerMs });
  const peer = options.exec
    ? connectorFor({ kind: "exec", argv: splitArgv(options.exec) }, options.exec, { log })
    : connectorFor({ kind: "stdio" }, "stdio", { log, escapeOutput: ctx.isTTY && !options.raw });
  const restore = exitOnSignals(log);
  try {
    return await bridge(server, peer, {
      maxSessions: options.keep ? Number.POSITIVE_INFINITY : 1,
      log,
      onSession: options.verbose ? (s) => log(`vmchan: session ${s.number} ended: ${s.forward} bytes in, ${s.backward} out`) : undefined,
    });
  } finally {
    restore();
  }
}
