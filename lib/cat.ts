import { openChannel } from "./channel.ts";
import type { Context } from "./context.ts";
import { escapingSink } from "./escape.ts";
import { FdSink } from "./fd-stream.ts";
import { ExitCode } from "./exit-codes.ts";
import { pump } from "./relay.ts";

export interface CatOptions {
  /** Keep reading across host disconnects and reconnects. Default false: end when the host leaves. */
  follow?: boolean;
  /** Wait for the host. Default true; false: exit ExitCode.noPeer at once when none is connected. */
  wait?: boolean;
  /** Bound on the wait for the host, ms. Default: none. */
  timeoutMs?: number;
  /** Stop after this many bytes. Default: no limit. */
  bytes?: number;
  /** Output file descriptor. Default 1 (stdout). */
  outFd?: number;
  /** Write control characters as they are even when stdout is a terminal. Default false. */
  raw?: boolean;
}

/** `vmchan cat PORT`: the port's bytes to stdout until the host session ends (or forever with follow). */
export async function cat(ctx: Context, address: string, options: CatOptions = {}): Promise<number> {
  // Checked before the port is read: data taken from it and then dropped would be lost.
  const out = new FdSink(options.outFd ?? 1, "standard output");
  const channel = await openChannel(address, { ...options, root: ctx.root });
  try {
    if (options.bytes === 0) return ExitCode.ok;
    // A guest must not drive the host's terminal: escape controls unless asked not to.
    await pump(channel, ctx.isTTY && !options.raw ? escapingSink(out) : out, { limit: options.bytes });
    return ExitCode.ok;
  } finally {
    await channel.close();
  }
}
