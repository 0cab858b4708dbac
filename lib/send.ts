import * as fs from "node:fs";
import { openChannel } from "./channel.ts";
import type { Context } from "./context.ts";
import type { Source } from "./endpoint.ts";
import { errnoOf, VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";
import { bytesSource, ConcatSource, FdSource } from "./fd-stream.ts";
import { pump } from "./relay.ts";

export interface SendOptions {
  /** Send this string instead of stdin or files. */
  data?: string;
  /** Wait for the host. Default true. */
  wait?: boolean;
  /** Bound on the wait for the host, ms. */
  timeoutMs?: number;
  /** Host: stay connected this long after QEMU has read everything, ms. Default 1000. */
  lingerMs?: number;
  /** Input file descriptor when no files are given. Default 0 (stdin). */
  inFd?: number;
}

/** `vmchan send PORT [FILE...]`: stdin, the files in order, or --data, to the port; 0 once every byte is written. */
export async function send(ctx: Context, address: string, files: readonly string[], options: SendOptions = {}): Promise<number> {
  if (options.data !== undefined && files.length > 0)
    throw new VmchanError("send takes --data or files, not both", { code: ExitCode.usage, hint: "see 'vmchan send --help'" });
  const fds = files.map(openInput); // fail on a missing file before touching the port
  const source: Source =
    options.data !== undefined
      ? bytesSource(new TextEncoder().encode(options.data))
      : fds.length > 0
        ? new ConcatSource(fds.map(({ fd, file }) => () => new FdSource(fd, `"${file}"`)))
        : new FdSource(options.inFd ?? 0, "standard input");
  const channel = await openChannel(address, { ...options, root: ctx.root });
  try {
    await pump(source, channel);
  } catch (err) {
    await Promise.resolve(channel.close()).catch(() => {}); // the transfer's own error is the one to report
    throw err;
  } finally {
    for (const { fd } of fds) if (fd !== 0) fs.closeSync(fd);
  }
  await channel.close(); // throws if the peer never took the last bytes
  return ExitCode.ok;
}

function openInput(file: string): { fd: number; file: string } {
  if (file === "-") return { fd: 0, file: "standard input" };
  try {
    return { fd: fs.openSync(file, "r"), file };
  } catch (err) {
    const code = errnoOf(err);
    throw new VmchanError(`cannot read "${file}": ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message}`, {
      code: code === "ENOENT" ? ExitCode.notFound : code === "EACCES" ? ExitCode.permission : ExitCode.failure,
    });
  }
}
