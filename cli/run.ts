import { checkRoot, processContext, type Context } from "../lib/context.ts";
import { formatError } from "../lib/errors.ts";

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
  process.exit(code);
}

function flushStdout(): Promise<void> {
  return new Promise((resolve) => {
    if (process.stdout.writableLength === 0) return resolve();
    process.stdout.write("", () => resolve());
  });
}
