import { checkRoot, processContext, type Context } from "../lib/context.ts";
import { errnoOf, formatError } from "../lib/errors.ts";
import { ExitCode } from "../lib/exit-codes.ts";
import { OutputClosed, OutputFailed } from "../lib/fd-stream.ts";

/** Runs a command's lib call with the real process context, then exits with its code (errors: one line). */
export async function run(body: (ctx: Context) => Promise<number> | number, root = "/"): Promise<never> {
  const ctx = processContext(root);
  let code: number;
  try {
    checkRoot(root);
    code = await body(ctx);
  } catch (err) {
    const { text, code: errCode } = formatError(err);
    ctx.err(text);
    code = errCode;
  }
  await flushStdout();
  const failed = ctx.outputFailure?.();
  if (failed && code === 0) {
    const err = errnoOf(failed) === "EPIPE" ? new OutputClosed("standard output") : new OutputFailed("standard output", (failed as Error).message ?? String(failed), failed);
    const { text, code: errCode } = formatError(err);
    if (errCode !== ExitCode.brokenPipe) ctx.err(text);
    code = errCode;
  }
  process.exit(code);
}

function flushStdout(): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.writableLength === 0) return resolve();
    process.stdout.write("", () => resolve());
  });
}
